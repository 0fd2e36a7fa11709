"""Desired configuration: signature, schema and version checks; what is in force persists."""

from case_support import DEVICE, KEY, OTHER_DEVICE, scratch_dir, write

from firmware.lib.desired import DesiredConfig
from protocol import messages, signing

ROLE = messages.ROLE_RATING_PAD


def signed(version, config, device=DEVICE, key=KEY):
    return signing.make_signed("desired_config", key, device, version=version, config=config, issued_by="admin")


def fresh(path=None):
    return DesiredConfig(ROLE, DEVICE, KEY, path, log=None)


def test_a_valid_config_is_applied_and_acknowledged():
    desired = fresh()
    report, config = desired.consider(signed(3, {"rating_timeout_s": 45, "prompt_text": "请评价"}))
    assert report == {"v": 1, "version": 3, "status": "applied", "in_force": 3}
    messages.validate("reported_config", report)
    assert config == {"rating_timeout_s": 45, "prompt_text": "请评价"}
    assert desired.version == 3


def test_keys_not_given_keep_their_value():
    desired = fresh()
    desired.consider(signed(1, {"rating_timeout_s": 45, "brightness": 20}))
    report, config = desired.consider(signed(2, {"brightness": 80}))
    assert report["status"] == "applied" and config == {"rating_timeout_s": 45, "brightness": 80}


def test_bad_signatures_are_rejected():
    desired = fresh()
    for payload, why in (
        (signed(1, {"brightness": 1}, device=OTHER_DEVICE), "signature"),  # replayed from another device
        (signed(1, {"brightness": 1}, key=bytes(32)), "signature"),
    ):
        report, config = desired.consider(payload)
        assert config is None and report["status"] == "rejected" and why in report["error"]
    tampered = signed(1, {"brightness": 1})
    tampered["config"] = {"brightness": 100}
    assert desired.consider(tampered)[0]["error"] == "signature does not verify"
    assert desired.version == 0 and desired.config == {}


def test_unknown_keys_and_out_of_range_values_are_rejected():
    desired = fresh()
    report, config = desired.consider(signed(1, {"idle_text": "display only"}))
    assert config is None and report["status"] == "rejected" and "unknown key" in report["error"]
    report, _ = desired.consider(signed(2, {"rating_timeout_s": 5}))
    assert report["version"] == 2 and ">= 10" in report["error"]


def test_older_versions_are_rejected_and_the_same_one_is_acknowledged_again():
    desired = fresh()
    desired.consider(signed(5, {"brightness": 50}))
    report, config = desired.consider(signed(4, {"brightness": 10}))
    assert config is None and report == {"v": 1, "version": 4, "status": "rejected", "in_force": 5,
                                         "error": "version 4 is older than version 5 in force"}
    report, config = desired.consider(signed(5, {"brightness": 50}))  # the retained message after a reconnect
    assert report["status"] == "applied" and report["in_force"] == 5 and config is None
    report, config = desired.consider(signed(5, {"brightness": 99}))
    assert report["status"] == "rejected" and "other content" in report["error"] and report["in_force"] == 5


def test_every_report_says_which_version_is_in_force():
    desired = fresh()
    report, _ = desired.consider(signed(1, {"brightness": 1}, key=bytes(32)))
    assert report["status"] == "rejected" and report["in_force"] == 0  # nothing applied yet: the defaults
    desired.consider(signed(2, {"brightness": 20}))
    for payload in (signed(3, {"brightness": 1}, key=bytes(32)), signed(4, {"rating_timeout_s": 5}),
                    signed(5, {"idle_text": "display only"}), {"v": 1, "version": 6}):
        report, config = desired.consider(payload)
        assert config is None and report["status"] == "rejected" and report["in_force"] == 2, report
        messages.validate("reported_config", report)
    assert desired.version == 2 and desired.config == {"brightness": 20}


def test_malformed_payloads_and_a_missing_key_are_rejected():
    desired = fresh()
    assert desired.consider([1, 2])[0]["version"] == 0
    unsigned = {"v": 1, "version": 9, "config": {}}
    report, _ = desired.consider(unsigned)
    assert report["version"] == 9 and "sig" in report["error"]
    keyless = DesiredConfig(ROLE, DEVICE, None, log=None)
    assert keyless.consider(signed(1, {}))[0]["error"] == "no device key provisioned"


def test_the_version_in_force_survives_a_reboot():
    path = scratch_dir("desired") + "/desired.json"
    fresh(path).consider(signed(6, {"thanks_text": "多谢"}))
    rebooted = fresh(path)
    assert rebooted.version == 6 and rebooted.config == {"thanks_text": "多谢"}
    assert rebooted.consider(signed(5, {}))[0]["status"] == "rejected"
    assert rebooted.consider(signed(5, {}))[0]["in_force"] == 6
    assert rebooted.consider(signed(6, {"thanks_text": "多谢"}))[0]["status"] == "applied"


def test_a_corrupt_state_file_runs_the_defaults_and_says_so():
    path = scratch_dir("desired") + "/desired.json"
    write(path, '{"version": 3, "config": {"brightness": 900}}')
    desired = fresh(path)
    assert desired.version == 0 and desired.config == {} and "unusable" in desired.error
    write(path, "{torn")
    assert "corrupt" in fresh(path).error
