"""[peripherals.*]: every section checked by its adapter when the file is loaded, all problems at once."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from edge_agent.config import ConfigError, parse_config
from edge_agent.peripherals import build_peripherals

ROOT = Path(__file__).resolve().parents[2]
BASE = {"center": {"code": "445202101001"}, "services": [{"prefix": "A", "name": "社保业务"}],
        "windows": [{"number": 1, "services": ["A"]}, {"number": 2, "services": ["A"]}]}


def uncommented_sample() -> dict:
    """The sample config with its commented peripheral examples switched on."""
    lines, examples = [], False
    for line in (ROOT / "edge_agent" / "sample-center.toml").read_text(encoding="utf-8").splitlines():
        if line.startswith("# Peripherals"):
            examples = True
        elif examples and line.startswith("# ") and ("=" in line or line.startswith("# [")):
            line = line[2:]
        elif examples and line.strip() == "#":
            line = ""
        lines.append(line)
    return tomllib.loads("\n".join(lines))


def test_the_sample_examples_are_valid_and_build_every_adapter(tmp_path):
    config = parse_config(uncommented_sample(), "sample-center.toml")
    adapters = build_peripherals(config.peripherals, tmp_path, print, print)
    assert [a.name for a in adapters] == ["id_card_reader", "scanner", "cameras", "document_camera"]


def test_no_peripherals_means_no_adapters(tmp_path):
    assert build_peripherals(parse_config(BASE).peripherals, tmp_path, print, print) == []


def test_every_peripheral_problem_is_reported_at_once_with_its_path():
    raw = {**BASE, "printer": {"kind": "serial"}, "peripherals": {
        "id_card": {"baud": 7},
        "scanner": "ttyACM0",
        "cameras": [{"window": 5, "url": "rtsp://cam/stream"}],
        "document_camera": {"device": 0},
        "fingerprint": {},
    }}
    with pytest.raises(ConfigError) as error:
        parse_config(raw, "center.toml")
    text = str(error.value)
    for expected in ("printer.path: a serial printer needs its port", "peripherals.fingerprint: unknown peripheral",
                     "peripherals.id_card.port", "peripherals.id_card.baud", "peripherals.scanner: must be a table",
                     "peripherals.cameras[0].window", "peripherals.cameras[0].url",
                     "peripherals.document_camera.device"):
        assert expected in text, expected
