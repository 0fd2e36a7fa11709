"""Desired configuration: checked, applied, acknowledged, and kept on flash.

The county's fleet publishes the configuration it wants on a device
(device_config_desired, retained, signed with the device's own key). The
device accepts it only if

- it is a well-formed desired_config payload,
- its HMAC-SHA256 verifies with this device's key (protocol.signing),
- every key is known for this role and in range (messages.validate_config),
- its version is not older than the one in force (the same version again,
  with the same content, is the retained message re-delivered on a
  reconnect: acknowledged again, nothing re-applied);

and answers with a reported_config payload either way, always with
`in_force`, the version it runs: the report is retained, so a rejection
replaces the last "applied" one and would otherwise hide what is in force.
Keys not given keep their current value, so what is in force is the merge
of every version applied. The version in force and the merged configuration live in one
file (`desired.json` in the state folder), replaced atomically, so they
survive a reboot; a corrupt file is reported and the built-in defaults run.

Pure apart from that file: `consider(payload)` returns what to publish and
what to apply; the runtime does both.
"""

from firmware.lib import flashfs
from protocol import messages, signing
from protocol.errors import ProtocolError

STATE_FILE = "desired.json"


def report(version, status, in_force, error=None):
    """A reported_config payload; `in_force` is the version running, which a rejection leaves unchanged."""
    return messages.make("reported_config", version=version, status=status, error=error, in_force=in_force)


class DesiredConfig:
    def __init__(self, role, device_id, key, path=None, log=print):
        self.role = role
        self.device_id = device_id
        self.key = key  # bytes, or None when the device was provisioned without one
        self.path = path
        self.version = 0  # in force; 0: nothing applied yet, the firmware's defaults
        self.config = {}  # merged configuration in force
        self._desired = None  # the config object of the version in force, as signed
        self.error = None
        self._log = log
        if path is not None:
            self._load()

    def consider(self, payload):
        """Check one received desired configuration.

        Returns (reported_config payload, config to apply or None). The
        config to apply is the full merged configuration now in force.
        """
        version = 0
        if isinstance(payload, dict):
            given = payload.get("version")
            if isinstance(given, int) and not isinstance(given, bool) and given >= 0:
                version = given
        try:
            messages.validate("desired_config", payload)
        except ProtocolError as exc:
            return self._reject(version, str(exc))
        if self.key is None:
            return self._reject(version, "no device key provisioned")
        if not signing.verify(self.key, self.device_id, payload):
            return self._reject(version, "signature does not verify")
        config = payload["config"]
        if version < self.version:
            return self._reject(version, "version %d is older than version %d in force" % (version, self.version))
        if version == self.version:
            if self._desired is not None and signing.canonical(config) == signing.canonical(self._desired):
                return report(version, messages.CONFIG_APPLIED, self.version), None
            return self._reject(version, "version %d is already in force with other content" % version)
        try:
            messages.validate_config(self.role, config)
        except ProtocolError as exc:
            return self._reject(version, str(exc))
        merged = {}
        for name in self.config:
            merged[name] = self.config[name]
        for name in config:
            merged[name] = config[name]
        self.version = version
        self.config = merged
        self._desired = config
        self._save()
        return report(version, messages.CONFIG_APPLIED, self.version), merged

    # ---------------------------------------------------------------- helpers

    def _reject(self, version, error):
        self._note("version %d rejected: %s" % (version, error))
        return report(version, messages.CONFIG_REJECTED, self.version, error), None

    def _load(self):
        state, error = flashfs.read_json(self.path)
        if error is None and state is None:
            return  # never configured: defaults
        if error is None:
            try:
                version = state["version"]
                if isinstance(version, bool) or not isinstance(version, int) or version < 0:
                    raise ProtocolError("bad version %r" % (version,))
                messages.validate_config(self.role, state["config"])
                desired = state.get("desired")
                if not isinstance(desired, dict):
                    desired = None
            except (ProtocolError, KeyError, TypeError) as exc:
                error = "%s unusable: %s" % (self.path, exc)
        if error is not None:
            self._note(error + "; running the defaults until a new version arrives")
            return
        self.version = version
        self.config = state["config"]
        self._desired = desired

    def _save(self):
        if self.path is None:
            return
        try:
            flashfs.write_json(self.path, {"version": self.version, "config": self.config, "desired": self._desired})
        except OSError as exc:
            # In force for this boot; after a reboot the retained desired message brings it back.
            self._note("version %d not saved: %s" % (self.version, exc))

    def _note(self, text):
        self.error = text
        if self._log is not None:
            self._log("desired config: " + text)
