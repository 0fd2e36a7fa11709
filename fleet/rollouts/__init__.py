"""Firmware rollouts to the boards in waves: canary devices, their center, their town, the county.

`plan.py` holds the rules (plain functions), `models.py` the tables, `service.py` applies the rules to the
database and sends the signed commands, `routes.py` the API and the 固件升级 pages.
"""
