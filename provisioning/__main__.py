import sys

from provisioning.main import main

sys.exit(main())
