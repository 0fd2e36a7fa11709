"""After the copy: `provision device` resets the board and waits for its birth on the center broker.

The virtual board's network side is the firmware twin (provisioning/testing/firmware_twin.py): after each
power-on it runs the real firmware under CPython with the config.json provisioning wrote into the board.
The broker is a real Mosquitto.
"""

from __future__ import annotations

import pytest

from firmware.lib.hold import HOLD_FILE
from provisioning.testing.firmware_twin import FirmwareTwin

pytestmark = pytest.mark.broker


@pytest.fixture
def twin(tmp_path):
    twin = FirmwareTwin(tmp_path / "twin")
    yield twin
    twin.close()


def test_the_device_is_seen_online_after_its_reset(board_factory, twin, center_broker, provision, device_args):
    board = board_factory(on_power_on=twin.boot)
    boots_before = twin.boots
    result = provision(*device_args(board.port, broker=f"127.0.0.1:{center_broker.port}", check=True))
    assert result.status == 0, result.err
    # two resets: the one that stops the firmware for the copy (held: the twin starts nothing), then the restart
    assert twin.boots == boots_before + 2 and twin.running
    assert board.hard_resets == 2
    online = [line for line in result.out.splitlines() if line.startswith("✓ online")]
    assert online and "birth from" in online[0], result.out
    assert twin.config_errors == []
    record = provision.read_records()[-1]
    assert record["outcome"] == "ok" and record["after_reset"].startswith("online")


def test_a_device_that_never_comes_online_fails_clearly(board_factory, center_broker, provision, device_args):
    board = board_factory()  # no network side: the board resets but nothing reaches the broker
    result = provision(*device_args(board.port, "--online-timeout", "2",
                                    broker=f"127.0.0.1:{center_broker.port}", check=True))
    assert result.status == 1
    assert "no birth from" in result.err and "Wi-Fi" in result.err
    assert provision.read_records()[-1]["outcome"] == "failed"


def test_an_unreachable_broker_is_named_before_the_reset(board, provision, device_args):
    from tools.mosquitto import free_port

    result = provision(*device_args(board.port, broker=f"127.0.0.1:{free_port()}", check=True))
    assert result.status == 1
    assert "cannot reach the center broker" in result.err and "--no-check" in result.err
    # only the reset that held the firmware for the copy: files copied, the hold removed, not restarted
    assert board.hard_resets == 1 and HOLD_FILE not in board.files()
