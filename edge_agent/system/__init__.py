"""The edge agent installed on a Raspberry Pi: what the Debian package's scripts and units run.

`python -m edge_agent.system <command>` (packaging/pi/ wraps it as `service-center <command>`):
- `configure`: the center broker's Mosquitto config (and its first password and ACL files) and the
  screens' settings, generated from the center's TOML (edge_agent.system.broker, .screens);
- `backup` / `restore`: the queue database (SQLite's online backup API) and the ID-card salt
  (edge_agent.system.backup);
- `screen <name>`: Chromium in kiosk mode on one of the center's screens (edge_agent.system.screens).

Nothing here runs inside the agent: these are one-shot programs started by systemd, dpkg or a technician.
"""
