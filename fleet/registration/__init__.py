"""Device registration: per-device broker credentials and keys, credential packs, the center broker's files.

    service.register_device(...)        # issue (or rotate) a device's broker password and signing key
    service.issue_pack(...)             # N credential slots for offline provisioning, answered once
    broker_files.broker_files(...)      # the center broker's `passwd` and `acl`
    service.note_birth(...)             # the ingest: a registered device becomes active on its first birth

Routes in routes.py, the `python -m fleet broker-files` command in cli.py. See fleet/README.md.
"""
