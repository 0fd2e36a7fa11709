"""Simulated hardware that speaks the real wire protocol, for tests and the demo."""
