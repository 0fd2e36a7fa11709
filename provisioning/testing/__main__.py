from provisioning.testing.virtual_board import main

main()
