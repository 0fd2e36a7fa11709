"""Which set of application files a board boots: the one it had, or a new one on trial.

The files provisioning put on the board (/lib, or frozen into the image) are the factory set. An update
(firmware/lib/ota.py) writes a new set into a slot folder beside the running one (<ota>/a or <ota>/b, never the
running slot) and, once every file is verified, marks it `pending` in <ota>/boot.json and resets the board.
main.py calls enter() before it imports anything of the application:

    pending             -> it becomes `trying` (written first), its folder goes in front of sys.path
    trying at boot      -> the last boot tried it and never confirmed it (a crash, a hang the watchdog ended, a
                           power cut, a failed health check): it becomes `failed` with the reason, and the
                           `active` set (the last one confirmed, or the factory set) boots again
    otherwise           -> the `active` set

The runtime confirms a trial once the board is healthy (ota.Updater): `active` becomes the tried set. Every
change of boot.json is one atomic replace (the same .tmp-then-rename as firmware/lib/flashfs.py, which this
module must not import: see below), so a power cut at any moment leaves either the old or the new
decision, and each of them boots.

This module is the one piece of the update path that is never replaced over the air: main.py imports it
(and the hold check, the watchdog driver) from the factory set, and enter() drops every application module
already imported before the slot's copies are imported. Pure: os, sys and json only, on both runtimes.
"""

import json
import os
import sys

STATE_FILE = "boot.json"
SLOTS = ("a", "b")
TMP_SUFFIX = ".tmp"
PACKAGES = ("firmware", "protocol")  # the application: what a slot holds and what enter() re-imports
REASON_NOT_CONFIRMED = "restarted before it was confirmed healthy"

# Called with the name of every step that changes boot.json, before it is taken; tests/firmware stop the
# process there to cut the power at that very step. None on a board.
checkpoint = None


def _step(name):
    if checkpoint is not None:
        checkpoint(name)


def _join(directory, name):
    return directory.rstrip("/") + "/" + name if directory else name


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def read_state(ota_dir):
    """boot.json as a dict ({} when missing or unreadable: the factory set boots)."""
    path = _join(ota_dir, STATE_FILE)
    for candidate in (path, path + TMP_SUFFIX):  # a .tmp alone: a replace cut between remove and rename (FAT)
        try:
            with open(candidate) as f:
                state = json.loads(f.read())
            if isinstance(state, dict):
                return state
        except (OSError, ValueError):
            continue
    return {}


def write_state(ota_dir, state):
    """Replace boot.json atomically (raises OSError on a full or broken flash)."""
    path = _join(ota_dir, STATE_FILE)
    tmp = path + TMP_SUFFIX
    _step("boot.json.tmp")
    with open(tmp, "w") as f:
        f.write(json.dumps(state))
    _step("boot.json")
    try:
        os.rename(tmp, path)
    except OSError:
        try:  # FAT: no rename over an existing file; a cut right here leaves the .tmp, which read_state takes
            os.remove(path)
        except OSError:
            pass
        os.rename(tmp, path)


def slot_dir(ota_dir, slot):
    return _join(ota_dir, slot)


def _usable(ota_dir, entry):
    return isinstance(entry, dict) and entry.get("slot") in SLOTS and _exists(slot_dir(ota_dir, entry["slot"]))


def choose(ota_dir):
    """Decide which set boots now and write that decision down. Returns the slot folder to run, or None for
    the factory set."""
    state = read_state(ota_dir)
    if not state:
        return None
    trying = state.get("trying")
    if isinstance(trying, dict):
        failed = {}
        for name in ("version", "sha", "issued_at"):
            failed[name] = trying.get(name)
        failed["reason"] = trying.get("reason") or REASON_NOT_CONFIRMED
        state["trying"] = None
        state["failed"] = failed
        state["last"] = "failed"
        try:
            write_state(ota_dir, state)
        except OSError:
            # A full or broken flash. Booting the previous set with `trying` still written would let the
            # runtime confirm the set that failed: the record goes instead, and the factory set boots.
            try:
                os.remove(_join(ota_dir, STATE_FILE))
            except OSError:
                pass
            return None
    elif _usable(ota_dir, state.get("pending")):
        trying = state["pending"]
        state["pending"] = None
        state["trying"] = trying
        state["last"] = "trying"
        try:
            write_state(ota_dir, state)  # first: a boot that never gets further is judged by it
        except OSError:
            return _active(ota_dir, state)  # a trial that could not be judged is not started
        return slot_dir(ota_dir, trying["slot"])
    return _active(ota_dir, state)


def _active(ota_dir, state):
    active = state.get("active")
    if _usable(ota_dir, active):
        return slot_dir(ota_dir, active["slot"])
    return None


def enter(ota_dir):
    """choose(), then make the chosen slot's application the one imported. Returns the slot folder or None."""
    folder = choose(ota_dir)
    if folder is None:
        return None
    if folder not in sys.path:
        sys.path.insert(0, folder)
    for name in list(sys.modules):
        for package in PACKAGES:
            if name == package or name.startswith(package + "."):
                del sys.modules[name]
                break
    return folder


def note_failure(ota_dir, reason):
    """Keep why the set on trial failed (a crash at boot, a loop that stalled) for the next boot to report.
    True if a trial was running. Never raises: it runs on the way to a reset."""
    try:
        state = read_state(ota_dir)
        trying = state.get("trying")
        if not isinstance(trying, dict):
            return False
        if not trying.get("reason"):  # the first reason is the cause; what follows is its consequence
            trying["reason"] = str(reason)[:200]
            write_state(ota_dir, state)
        return True
    except Exception:
        return False
