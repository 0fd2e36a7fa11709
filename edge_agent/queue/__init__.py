"""The center's queue: pure rules (rules.py) and their persisted service (service.py)."""
