"""Over-the-air updates on the board: check, fetch, stage, and keep a new set only once it is healthy.

The fleet names the bundle a board should run in a firmware_desired signed with the board's key
(protocol/firmware.py says why the trust chain runs signature -> manifest sha256 -> every file's sha256).
The Updater

- checks the signature and decides: nothing to do (runs it, stages it or tries it already), refused (bad
  signature: nothing fetched), a bundle that failed here before for this very order (not tried again; a new
  issued_at is a retry), or a download;
- downloads into the slot that is not running (otaboot.SLOTS): the manifest first, checked against the signed
  sha256, then every file in chunks from the center's edge (firmware_fetch / firmware_chunk), appended to
  flash and hashed as it comes, so the heap holds one chunk, never a file. A download cut by a reboot resumes:
  the bytes already on flash are hashed again and the fetch goes on from their end;
- marks the verified set `pending` in boot.json and the runtime resets the board: otaboot.choose() boots it
  on trial;
- on trial, confirms it once the birth went out within TRIAL_BIRTH_S and every loop stayed alive for
  TRIAL_HEALTHY_S; otherwise it writes down why and the runtime resets the board, which boots the previous
  set again (otaboot) and reports `failed` with the reason.

Every step that changes flash is one atomic replace of a small JSON file or an append to a file whose
content is checked against its sha256 before use, so a power cut anywhere leaves a board that boots the old
set or the new one (tests/firmware: a cut at every step under the MicroPython unix port).

Files under the state folder's `ota/`: boot.json (otaboot), download.json (which bundle the staging slot is
filling), <slot>.manifest.json (the verified manifest of a slot), a/ and b/ (the slots).
"""

from firmware.lib import otaboot
from protocol import messages, signing
from protocol.errors import ProtocolError

# Called with the name of every step that changes flash, before it is taken; tests/firmware stop the
# process there to cut the power at that very step. None on a board.
checkpoint = None


def step(name):
    if checkpoint is not None:
        checkpoint(name)


class Updater:
    CHUNK_BYTES = 2048
    """Asked for per firmware_fetch: its firmware_chunk (base64 in JSON) and its decoded bytes are the heap a
    download takes, whatever the bundle's size."""
    FETCH_TIMEOUT_MS = 3000
    FETCH_ATTEMPTS = 5
    """Unanswered fetches in a row before the download pauses (FetchError) and the runtime tries again later."""
    TRIAL_BIRTH_S = 60
    """A new set on trial must have sent its birth within this long after its boot..."""
    TRIAL_HEALTHY_S = 30
    """...and kept every loop alive this long after the birth; then it is kept (confirmed)."""

    def __init__(self, ota_dir, device_id, key, factory_version, log=print):
        self.ota_dir = ota_dir
        self.device_id = device_id
        self.key = key
        self.factory_version = factory_version
        self._log = log
        self.state = otaboot.read_state(ota_dir)
        self.target = None  # the checked firmware_desired being worked on
        self.done_bytes = 0
        self.total_bytes = 0
        self.error = None
        self.deferred = None  # a firmware_desired received during a trial: considered once the trial ends
        trying = self.state.get("trying")
        self.trial = trying if isinstance(trying, dict) else None
        self.phase = self.state.get("last") if self.state.get("last") in messages.FW_STATES else messages.FW_IDLE
        self._birth_at = None
        self.booted_at = 0  # uptime (ms) of the boot this state was read at: the trial's clock starts there
        self.trial_failed = None  # why the trial failed, once it has: judged once, the reset follows

    # ------------------------------------------------------------------ what runs

    def _running_entry(self):
        if self.trial is not None:
            return self.trial
        active = self.state.get("active")
        return active if isinstance(active, dict) else None

    def running_version(self):
        entry = self._running_entry()
        if entry is None or not entry.get("version"):
            return self.factory_version
        return entry["version"]

    def running_sha(self):
        entry = self._running_entry()
        return entry.get("sha") if entry is not None else None

    def status(self):
        """The firmware_status payload of now."""
        fields = {"state": self.phase, "running": self.running_version(), "running_sha256": self.running_sha()}
        target = self.target
        if target is not None:
            fields["target"] = target["version"]
            fields["target_sha256"] = target["manifest_sha256"]
            fields["issued_at"] = target["issued_at"]
        elif self.trial is not None:
            fields["target"] = self.trial.get("version")
            fields["target_sha256"] = self.trial.get("sha")
            fields["issued_at"] = self.trial.get("issued_at")
        if self.phase == messages.FW_DOWNLOADING:
            fields["done_bytes"] = self.done_bytes
            fields["total_bytes"] = self.total_bytes
        pending = self.state.get("pending")
        if isinstance(pending, dict):
            fields["staged"] = pending.get("version")
        failed = self.state.get("failed")
        if self.phase == messages.FW_FAILED and isinstance(failed, dict) and (
                target is None or target["manifest_sha256"] == failed.get("sha")):
            fields["failed"] = failed.get("version")
            fields["failed_sha256"] = failed.get("sha")
            if target is None:
                fields["target"] = failed.get("version")
                fields["target_sha256"] = failed.get("sha")
                fields["issued_at"] = failed.get("issued_at")
        error = self.error
        if error is None and self.phase == messages.FW_FAILED and isinstance(failed, dict):
            error = failed.get("reason")
        if error and self.phase in (messages.FW_FAILED, messages.FW_REFUSED, messages.FW_DOWNLOADING):
            fields["error"] = error[:200]  # downloading: why it waits (the edge has no such bundle yet, ...)
        return messages.make("firmware_status", **fields)

    # ------------------------------------------------------------------ orders

    def consider(self, payload):
        """Check one firmware_desired. Returns True when a download should start (self.target is set); the
        caller publishes status() either way."""
        version = payload.get("version") if isinstance(payload, dict) else None
        try:
            messages.validate("firmware_desired", payload)
            if len(payload["manifest_sha256"]) != 64:
                raise ProtocolError("manifest_sha256 must be 64 hex digits")
        except ProtocolError as exc:
            return self._refuse(payload, "not a valid firmware_desired: %s" % exc)
        if self.key is None:
            return self._refuse(payload, "no device key provisioned")
        if not signing.verify(self.key, self.device_id, payload):
            return self._refuse(payload, "signature does not verify")
        if self.trial is not None:
            self.deferred = payload  # the set on trial is judged first
            return False
        sha = payload["manifest_sha256"]
        self.error = None
        if sha == self.running_sha():
            self.target = None
            if self.phase != messages.FW_CONFIRMED:
                self.phase = messages.FW_IDLE
            return False
        pending = self.state.get("pending")
        if isinstance(pending, dict) and pending.get("sha") == sha:
            self.target = payload
            self.phase = messages.FW_STAGED
            return False
        failed = self.state.get("failed")
        if isinstance(failed, dict) and failed.get("sha") == sha and failed.get("issued_at") == payload["issued_at"]:
            self.target = None
            self.phase = messages.FW_FAILED  # this very order failed here: only a new one (issued_at) retries
            return False
        self.target = payload
        self.phase = messages.FW_DOWNLOADING
        self.done_bytes = 0
        self.total_bytes = 0
        self.note("firmware %s (%s) wanted: downloading" % (version, sha[:12]))
        return True

    def _refuse(self, payload, why):
        self.target = None
        self.phase = messages.FW_REFUSED
        self.error = why
        self.note("firmware_desired refused: %s" % why)
        return False

    # ------------------------------------------------------------------ the download

    async def download(self, fetch):
        """Fetch, verify and stage self.target (firmware/lib/ota_download.py, imported only when an update
        comes: the heap of a board that is not updating holds none of it)."""
        from firmware.lib import ota_download

        await ota_download.download(self, fetch)

    def staging_slot(self):
        active = self.state.get("active")
        running = active.get("slot") if isinstance(active, dict) else None
        return otaboot.SLOTS[1] if running == otaboot.SLOTS[0] else otaboot.SLOTS[0]

    def download_failed(self, exc, for_good):
        """The download stopped. `for_good` (the bundle is bad, or the flash): this order failed. Otherwise (the
        edge did not answer, has no such bundle yet) it is still downloading, tried again later, and says why."""
        self.error = str(exc)
        self.note("firmware download stopped: %s" % exc)
        target = self.target
        if not for_good:
            self.phase = messages.FW_DOWNLOADING
            return
        if target is not None:
            self.state["failed"] = {"version": target["version"], "sha": target["manifest_sha256"],
                                    "issued_at": target["issued_at"], "reason": str(exc)}
            self.state["last"] = messages.FW_FAILED
            try:
                self._save("failed")
            except OSError:
                pass  # a full flash: reported now all the same; after a reboot the order is tried again
            self.target = None
        self.phase = messages.FW_FAILED

    # ------------------------------------------------------------------ the trial

    def birth_sent(self, uptime_ms):
        if self._birth_at is None:
            self._birth_at = uptime_ms

    def judge_trial(self, uptime_ms, stalled):
        """During a trial: "confirm" once healthy long enough, a reason when it failed, else None.
        `stalled`: names of the loops that made no progress in time (the watchdog's view)."""
        if self.trial is None or self.trial_failed is not None:
            return None
        if stalled:
            return "no progress from %s during the trial" % ", ".join(stalled)
        if self._birth_at is None:
            if uptime_ms - self.booted_at > self.TRIAL_BIRTH_S * 1000:
                return "no birth within %d s of the boot (the broker was never reached)" % self.TRIAL_BIRTH_S
            return None
        if uptime_ms - self._birth_at >= self.TRIAL_HEALTHY_S * 1000:
            return "confirm"
        return None

    def confirm(self):
        """Keep the set on trial: it becomes the active one. Returns a deferred firmware_desired, if any."""
        trial = self.trial
        if trial is None:
            return None
        step("confirm")
        self.state["active"] = {"slot": trial["slot"], "version": trial.get("version"), "sha": trial.get("sha")}
        self.state["trying"] = None
        self.state["failed"] = None
        self.state["last"] = messages.FW_CONFIRMED
        self._save("confirmed")
        self.trial = None
        self.phase = messages.FW_CONFIRMED
        self.target = None
        self.note("firmware %s confirmed healthy and kept" % trial.get("version"))
        deferred, self.deferred = self.deferred, None
        return deferred

    def fail_trial(self, reason):
        """Write down why the set on trial failed; the caller resets the board, which boots the previous set."""
        self.trial_failed = reason
        self.note("firmware on trial failed: %s" % reason)
        otaboot.note_failure(self.ota_dir, reason)

    # ------------------------------------------------------------------ helpers

    def note(self, text):
        if self._log is not None:
            self._log(text)

    def _save(self, what):
        try:
            otaboot.write_state(self.ota_dir, self.state)
        except OSError as exc:
            self.note("boot.json not written (%s): %s" % (what, exc))
            raise

