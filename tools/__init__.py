"""Developer tooling: local brokers, the demo, the architecture lint."""
