"""Registering a device with the fleet, which answers with its credentials.

NOT BUILT YET: the fleet has no registration endpoint and issues no device keys so far. The next step
of issue 6 fills this in: POST the device id, center, window, role and image hash with the technician's
API token, receive the device's broker user name and password and its signing key (the fleet keeps
only their hashes), and in offline mode take them from a credential pack issued beforehand. Until
then `register_with_fleet` registers nothing and returns None, provisioning says so on its own
progress line, and config.json carries no key (the firmware then refuses every signed command).
"""

from __future__ import annotations

from provisioning.device_config import DeviceCredentials, DeviceSettings

NOT_BUILT = "not built yet: the fleet has no registration endpoint; config.json gets no device key"


def register_with_fleet(device_id: str, settings: DeviceSettings, image_sha256: str,
                        technician: str) -> DeviceCredentials | None:
    """The device's credentials from the fleet; None while the fleet cannot register devices."""
    return None
