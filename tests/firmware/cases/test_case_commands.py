"""Commands: signature, arguments, each id at most once (on flash); the identify and test overlays."""

import command_arg_samples
from case_support import DEVICE, KEY, OTHER_DEVICE, scratch_dir

from firmware.lib.commands import CommandGate, Overlay
from firmware.lib.recent import RecentIds
from protocol import messages, signing
from protocol.errors import ProtocolError


def command(command_id, name, args=None, device=DEVICE, key=KEY):
    return signing.make_signed("command", key, device, command_id=command_id, command=name, args=args)


def gate(path=None):
    return CommandGate(DEVICE, KEY, RecentIds(path, log=None))


def test_a_signed_command_runs_once_with_checked_arguments():
    commands = gate()
    ran, answer = commands.check(command("c-1", "identify"))
    assert answer is None and (ran.command_id, ran.name, ran.args) == ("c-1", "identify", {"seconds": 10})
    ran, answer = commands.check(command("c-1", "identify"))
    assert ran is None and answer == {"v": 1, "command_id": "c-1", "status": "rejected",
                                      "error": "command c-1 already run"}
    messages.validate("command_ack", answer)


def test_run_ids_survive_a_reboot():
    path = scratch_dir("commands") + "/commands.json"
    assert gate(path).check(command("c-9", "reboot"))[0] is not None
    ran, answer = gate(path).check(command("c-9", "reboot"))
    assert ran is None and "already run" in answer["error"]


def test_bad_signatures_are_rejected_and_not_remembered():
    commands = gate()
    for payload in (command("c-2", "reboot", device=OTHER_DEVICE), command("c-2", "reboot", key=bytes(32))):
        ran, answer = commands.check(payload)
        assert ran is None and answer["status"] == "rejected" and answer["error"] == "signature does not verify"
    assert commands.check(command("c-2", "reboot"))[0] is not None  # the real one still runs


def test_bad_arguments_and_malformed_commands_are_rejected():
    commands = gate()
    ran, answer = commands.check(command("c-3", "brightness", {"level": 101}))
    assert ran is None and "args.level" in answer["error"]
    ran, answer = commands.check(command("c-4", "brightness"))
    assert ran is None and "required" in answer["error"]
    unknown = {"v": 1, "command_id": "c-5", "command": "format_flash", "sig": "00"}
    assert "command" in commands.check(unknown)[1]["error"]
    assert commands.check({"command": "reboot"}) == (None, None)  # nothing to acknowledge
    assert commands.check("junk") == (None, None)
    keyless = CommandGate(DEVICE, None, RecentIds(None, log=None))
    assert keyless.check(command("c-6", "reboot"))[1]["error"] == "no device key provisioned"


def signed_any(command_id, name, args):
    """Signed even when the contract forbids it (an unknown command), as a compromised fleet might."""
    payload = {"v": 1, "command_id": command_id, "command": name}
    if args is not None:
        payload["args"] = args
    return signing.sign(KEY, DEVICE, payload)


def test_the_device_accepts_and_refuses_the_shared_argument_samples():
    # The fleet refuses exactly these before signing (tests/fleet/test_fleet_config.py).
    commands = gate()
    for n, (name, args, checked) in enumerate(command_arg_samples.GOOD):
        ran, answer = commands.check(command("g-%d" % n, name, args))
        assert answer is None and ran.args == checked, (name, args, answer)
    for n, (name, args, reason) in enumerate(command_arg_samples.BAD):
        ran, answer = commands.check(signed_any("b-%d" % n, name, args))
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
