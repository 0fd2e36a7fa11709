"""The center's items and their structured 办事指南: parsed with every problem at once, searched, told at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.config import ConfigError, load_config, parse_config, services_from_items
from edge_agent.guide import Material, notice_lines, parse_items, search

SAMPLE = Path(__file__).parents[2] / "edge_agent" / "sample-center.toml"


def test_items_are_checked_with_every_problem_at_once() -> None:
    problems: list[str] = []
    parse_items([{"code": "X-1", "name": "甲", "prefix": "Z", "kind": "someday", "legal_days": 1, "promised_days": 3,
                  "materials": [{"name": "", "originals": 0, "copies": 0, "colour": "red"}, 7]},
                 {"code": "X-1", "name": "", "prefix": "A"}], {"A"}, problems)
    assert problems == [
        "items[0].prefix: unknown service 'Z'",
        "items[0].kind: must be immediate (即办件) or promised (承诺件), got 'someday'",
        "items[0].promised_days: longer than legal_days",
        "items[0].materials[0].name: is required",
        "items[0].materials[0]: originals and copies cannot both be 0",
        "items[0].materials[0].colour: unknown key (name, originals, copies, note)",
        "items[0].materials[1]: must be a table (name, originals, copies, note)",
        "items[1].code: 'X-1' is listed twice",
        "items[1].name: is required",
    ]


def test_the_sample_center_has_structured_guides_and_the_old_free_text_is_refused() -> None:
    config = load_config(SAMPLE)
    assert [item.code for item in config.items] == ["SB-001", "SB-002", "YB-001"]
    assert config.item("SB-002").materials[2] == Material("近期一寸免冠照片", 2, 0, "白底")
    assert config.consult_phone and config.opening_hours
    with pytest.raises(ConfigError) as refused:
        parse_config({"center": {"code": "445202101001"}, "windows": [{"number": 1, "services": ["A"]}],
                      "services": [{"prefix": "A", "name": "社保业务", "guide": "即时办结", "materials": ["身份证"]}]})
    assert "services[0].guide: the 办事指南 is structured now" in str(refused.value)
    assert "services[0].materials:" in str(refused.value)


def test_search_and_the_notice_tell_everything_at_once() -> None:
    config = load_config(SAMPLE)
    assert [item.code for item in search(config.items, " 养老 保险")] == ["SB-001", "SB-002"]
    assert [item.code for item in search(config.items, "yb-")] == ["YB-001"]
    lines = notice_lines(config.item("SB-002"), config.name)
    assert lines[:2] == ["事项：城乡居民养老保险待遇领取", "办件类型：承诺件"]
    assert "3. 近期一寸免冠照片 原件2份（白底）" in lines
    assert "办理时限：20个工作日" in lines and "承诺时限：10个工作日" in lines
    assert "办理地点：一楼社保窗口" in lines and "咨询电话：0663-8881001" in lines


def test_services_of_a_county_configuration_come_from_its_names_and_items() -> None:
    items = [{"prefix": "B", "name": "异地就医备案", "service_name": "医保业务"}, {"prefix": "C", "name": "低保申请"}]
    services = services_from_items(items, [{"prefix": "A", "name": "社保业务"}])
    assert [(s.prefix, s.name) for s in services] == [("A", "社保业务"), ("B", "医保业务"), ("C", "低保申请")]
