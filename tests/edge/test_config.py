from pathlib import Path

import pytest

from edge_agent.config import ConfigError, load_config, parse_config

ROOT = Path(__file__).resolve().parents[2]


def test_the_sample_center_config_loads():
    config = load_config(ROOT / "edge_agent" / "sample-center.toml")
    assert config.code == "445202101001"
    assert [w.number for w in config.windows] == [1, 2, 3]
    assert config.service("A").name == "社保业务"
    assert config.data_dir == ROOT / "edge_agent" / "data"


def test_every_problem_is_reported_at_once_with_its_path():
    raw = {
        "center": {"code": "4452", "opening_time": "late"},
        "services": [{"prefix": "a", "name": "社保业务"}, {"prefix": "B"}],
        "windows": [{"number": 0, "services": ["Z"]}],
        "brokers": {"center": {"port": 70000}},
    }
    with pytest.raises(ConfigError) as error:
        parse_config(raw, "center.toml")
    text = str(error.value)
    for expected in ("center.code", "center.opening_time", "services[0].prefix", "services[1].name",
                     "windows[0].number", "windows[0].services: unknown service 'Z'", "brokers.center.port"):
        assert expected in text
    assert text.startswith("center.toml: ")


def test_missing_and_malformed_files_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[center\ncode=1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
