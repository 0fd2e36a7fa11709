"""Commands: signature, freshness (boot, issue time, validity), arguments, each id at most once (on flash); the
identify and test overlays."""

import command_arg_samples
from case_support import DEVICE, KEY, OTHER_DEVICE, scratch_dir

from firmware.lib.commands import CommandGate, Overlay
from firmware.lib.recent import RecentIds
from protocol import messages, signing
from protocol.errors import ProtocolError

BOOT = "0a1b2c3d"  # this boot's id, drawn at start (protocol.presence.new_boot_id)
T0 = 1795400000  # the signer's Unix time of the first command, in seconds


def command(command_id, name, args=None, device=DEVICE, key=KEY, boot=BOOT, issued_at=T0,
            valid_s=messages.COMMAND_VALID_S):
    return signing.make_signed("command", key, device, command_id=command_id, command=name, args=args, boot=boot,
                               issued_at=issued_at, valid_s=valid_s)


def gate(path=None, boot=BOOT, limit=32):
    return CommandGate(DEVICE, KEY, RecentIds(path, limit, log=None), boot)


def test_a_signed_command_runs_once_with_checked_arguments():
    commands = gate()
    ran, answer = commands.check(command("c-1", "identify"), 0)
    assert answer is None and (ran.command_id, ran.name, ran.args) == ("c-1", "identify", {"seconds": 10})
    ran, answer = commands.check(command("c-1", "identify"), 0)
    assert ran is None and answer == {"v": 1, "command_id": "c-1", "status": "rejected",
                                      "error": "command c-1 already run"}
    messages.validate("command_ack", answer)


def test_run_ids_survive_a_reboot():
    path = scratch_dir("commands") + "/commands.json"
    assert gate(path).check(command("c-9", "reboot"), 0)[0] is not None
    ran, answer = gate(path).check(command("c-9", "reboot"), 0)
    assert ran is None and "already run" in answer["error"]


def test_a_command_for_an_earlier_boot_is_refused_even_with_its_id_forgotten():
    """Re-provisioning writes the flash anew: the ids run are gone, the key may be the same. An old signed reboot
    names the boot it was for, and every start draws a new one."""
    assert gate(scratch_dir("commands") + "/commands.json").check(command("c-9", "reboot"), 0)[0] is not None
    reprovisioned = gate(scratch_dir("commands") + "/commands.json", boot="9f8e7d6c")
    ran, answer = reprovisioned.check(command("c-9", "reboot"), 0)
    assert ran is None and answer["status"] == "rejected" and "earlier boot" in answer["error"], answer
    ran, answer = reprovisioned.check(command("c-10", "reboot", boot="9f8e7d6c"), 0)  # a fresh one runs
    assert answer is None and ran.name == "reboot"


def test_a_command_without_its_freshness_is_refused():
    commands = gate()
    for missing in ("boot", "issued_at", "valid_s"):
        payload = command("c-%s" % missing, "reboot")
        del payload[missing]
        ran, answer = commands.check(signing.sign(KEY, DEVICE, payload), 0)
        assert ran is None and "freshness cannot be told" in answer["error"], missing
    too_long = signing.sign(KEY, DEVICE, dict(command("c-long", "reboot"), valid_s=messages.COMMAND_MAX_VALID_S + 1))
    ran, answer = commands.check(too_long, 0)
    assert ran is None and "valid_s" in answer["error"]


def test_a_command_older_than_its_validity_is_refused_by_the_time_the_commands_run_tell():
    commands = gate()
    valid = messages.COMMAND_VALID_S
    assert commands.county_time(0) is None  # no command yet: nothing to reckon from
    assert commands.check(command("c-1", "identify", issued_at=T0), 5000)[0] is not None
    assert commands.county_time(5000) == T0 and commands.county_time(65000) == T0 + 60
    # Issued long before the command just run: stale, whatever the order they arrive in.
    ran, answer = commands.check(command("c-0", "reboot", issued_at=T0 - valid - 1), 5000)
    assert ran is None and "expired" in answer["error"], answer
    assert commands.check(command("c-2", "identify", issued_at=T0 - valid), 5000)[0] is not None  # just in time
    # The device's uptime moves the reckoning on: the same command a validity later is stale.
    ran, answer = commands.check(command("c-3", "reboot", issued_at=T0), 5000 + (valid + 1) * 1000)
    assert ran is None and "expired" in answer["error"]
    # A newer command moves it on as well; an older one does not move it back.
    assert commands.check(command("c-4", "identify", issued_at=T0 + 3600), 6000)[0] is not None
    assert commands.county_time(6000) == T0 + 3600
    assert commands.check(command("c-5", "identify", issued_at=T0 + 3601 - valid), 7000)[0] is not None
    assert commands.county_time(7000) == T0 + 3601


def test_a_replay_whose_id_was_forgotten_is_refused():
    """The flash list keeps the newest ids only; a command issued no later than one forgotten this boot cannot be
    told from a replay."""
    commands = gate(limit=2)
    for n in (1, 2, 3):
        assert commands.check(command("c-%d" % n, "identify", issued_at=T0 + n), 0)[0] is not None
    assert "c-1" not in commands.seen
    ran, answer = commands.check(command("c-1", "identify", issued_at=T0 + 1), 0)
    assert ran is None and "no longer remembers" in answer["error"], answer
    assert commands.check(command("c-4", "identify", issued_at=T0 + 2), 0)[0] is not None  # after the floor


def test_provisionings_commands_do_not_move_the_reckoning():
    """A technician's laptop signs its self-test with its own clock, which may be hours ahead: it must not make
    the fleet's commands look stale for the rest of the boot."""
    commands = gate()
    prov = messages.PROVISIONING_COMMAND_PREFIX + "0a1b"
    assert commands.check(command(prov, "self_test", issued_at=T0 + 7200), 0)[0] is not None
    assert commands.county_time(0) is None
    assert commands.check(command("c-1", "identify", issued_at=T0), 1000)[0] is not None


def test_bad_signatures_are_rejected_and_not_remembered():
    commands = gate()
    for payload in (command("c-2", "reboot", device=OTHER_DEVICE), command("c-2", "reboot", key=bytes(32)),
                    dict(command("c-2", "reboot"), issued_at=T0 + 0.5)):  # a float no signer signs
        ran, answer = commands.check(payload, 0)
        assert ran is None and answer["status"] == "rejected" and answer["error"] == "signature does not verify"
    assert commands.check(command("c-2", "reboot"), 0)[0] is not None  # the real one still runs


def test_bad_arguments_and_malformed_commands_are_rejected():
    commands = gate()
    ran, answer = commands.check(command("c-3", "brightness", {"level": 101}), 0)
    assert ran is None and "args.level" in answer["error"]
    ran, answer = commands.check(command("c-4", "brightness"), 0)
    assert ran is None and "required" in answer["error"]
    unknown = {"v": 1, "command_id": "c-5", "command": "format_flash", "sig": "00"}
    assert "command" in commands.check(unknown, 0)[1]["error"]
    assert commands.check({"command": "reboot"}, 0) == (None, None)  # nothing to acknowledge
    assert commands.check("junk", 0) == (None, None)
    keyless = CommandGate(DEVICE, None, RecentIds(None, log=None), BOOT)
    assert keyless.check(command("c-6", "reboot"), 0)[1]["error"] == "no device key provisioned"


def signed_any(command_id, name, args):
    """Signed even when the contract forbids it (an unknown command), as a compromised fleet might."""
    payload = {"v": 1, "command_id": command_id, "command": name, "boot": BOOT, "issued_at": T0,
               "valid_s": messages.COMMAND_VALID_S}
    if args is not None:
        payload["args"] = args
    return signing.sign(KEY, DEVICE, payload)


def test_the_device_accepts_and_refuses_the_shared_argument_samples():
    # The fleet refuses exactly these before signing (tests/fleet/test_fleet_config.py).
    commands = gate()
    for n, (name, args, checked) in enumerate(command_arg_samples.GOOD):
        ran, answer = commands.check(command("g-%d" % n, name, args), 0)
        assert answer is None and ran.args == checked, (name, args, answer)
    for n, (name, args, reason) in enumerate(command_arg_samples.BAD):
        ran, answer = commands.check(signed_any("b-%d" % n, name, args), 0)
        assert ran is None and answer["status"] == "rejected" and reason in answer["error"], (name, args, answer)
        assert "b-%d" % n not in commands.seen  # a refused id may still come back, corrected


def test_check_command_args_is_the_shared_rule():
    assert messages.check_command_args("brightness", {"level": 0}) == {"level": 0}
    assert messages.check_command_args("test_pattern", {"seconds": 300}) == {"seconds": 300}
    for name, args, reason in command_arg_samples.BAD:
        try:
            messages.check_command_args(name, args)
        except ProtocolError as exc:
            assert reason in str(exc), (name, args, str(exc))
            continue
        raise AssertionError("accepted %s %r" % (name, args))


def test_identify_blinks_for_its_seconds_then_ends():
    overlay = Overlay()
    assert overlay.lines(0, DEVICE) is None
    overlay.start("identify", 1000, 2)
    assert overlay.lines(1000, DEVICE) == ["设备识别", DEVICE]
    assert overlay.lines(1600, DEVICE) == ["", ""]
    assert overlay.lines(2100, DEVICE) == ["设备识别", DEVICE]
    assert overlay.frame(1100) != overlay.frame(1600)
    assert overlay.lines(3000, DEVICE) is None and not overlay.active


def test_test_pattern_cycles_frames():
    overlay = Overlay()
    overlay.start("test_pattern", 0, 5)
    frames = [tuple(overlay.lines(ms, DEVICE)) for ms in (0, 1000, 2000, 3000)]
    assert frames[0] != frames[1] != frames[2] and frames[3] == frames[0]


def test_a_button_check_passes_when_every_button_was_pressed_once():
    from firmware.lib.commands import ButtonCheck

    check = ButtonCheck("c-7", (5, 4, 3, 2, 1), 1000, 60)
    assert check.lines() == ["按键自检", "请按 5 4 3 2 1"]
    for score in (5, 5, 3, 1, 2):
        check.press(score)
    assert not check.passed and check.lines() == ["按键自检", "请按 4"] and check.presses == 5
    assert not check.expired(1000 + 59999)
    assert check.expired(1000 + 60000) and check.failure() == "buttons not pressed: 4"
    check.press(4)
    assert check.passed
