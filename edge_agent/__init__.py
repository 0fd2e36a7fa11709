"""The edge agent: one per service center, on a Raspberry Pi."""
