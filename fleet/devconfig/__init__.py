"""Device configuration (scopes, versions, signed pushes, drift), commands and device keys.

- `models.py`: ConfigRevision, DeviceConfigState, DeviceConfigVersion, DeviceCommand, DeviceKey;
- `config.py`: inheritance county < town < center < device, versions, roll-back, push, reports;
- `commands.py`: signed commands, acknowledgements, time-outs;
- `keys.py`: device keys sealed with AES-GCM under a key derived from the server secret;
- `routes.py`: /api/config/..., /api/devices/{id}/key|config|commands, /config, the device page's block;
- `cli.py`: `python -m fleet.devconfig key generate|set|show`.
"""
