"""Device registration: per-device broker credentials and keys, credential packs, the center broker's files.

    service.register_device(...)        # issue (or rotate) a device's broker password and signing key
    service.issue_pack(...)             # N credential slots for offline provisioning, answered once
    broker_files.broker_files(...)      # the center broker's `passwd` and `acl`
    service.note_birth(...)             # the ingest: a registered device becomes active on its first birth
    service.issue_edge_credentials(...) # an edge's center and county broker accounts and its edge key
    county_broker.county_files(...)     # the county broker's `passwd` and `acl`

Routes in routes.py, the `python -m fleet broker-files` command in cli.py, `county-broker-files` and
`county-broker-account` in county_cli.py. See fleet/README.md.
"""
