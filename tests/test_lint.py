"""tools/lint.py: the architecture rules, on small files written to a tmp tree, and on the repo."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tools import lint

REPO = Path(__file__).resolve().parent.parent

TOPIC_LITERAL = 'TOPIC = "sc/445202101001/device/dev-a4cf12ab34cd/presence"\n'
TOPIC_FSTRING = 'def topic(c):\n    return f"sc/{c}/x"\n'


def write(root: Path, rel: str, source: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source, encoding="utf-8")
    return path


def problems_in(root: Path, rel: str, source: str) -> list[lint.Problem]:
    write(root, rel, source)
    problems, _count = lint.lint(root)
    return problems


def rules_of(problems) -> list[str]:
    return [p.rule for p in problems]


# --- topic strings -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        TOPIC_LITERAL,
        TOPIC_FSTRING,
        'client.subscribe(b"sc/+/device/+/presence")\n',
        'FILTER = "$share/fleet/sc/+/event/ticket"\n',
        'x = f"$share/{group}/{f}"\n',
        "def f():\n    return {'topic': 'sc/445202101001/edge/presence'}\n",
        "t = 'sc/' + center + '/edge/presence'\n",
    ],
)
def test_topic_literal_outside_protocol_fails(tmp_path, source):
    problems = problems_in(tmp_path, "fleet/ingest.py", source)
    assert rules_of(problems) == ["topic-literal"], problems
    assert str(problems[0]).startswith("fleet/ingest.py:")
    assert "protocol.topics" in problems[0].message


def test_problem_names_path_and_line(tmp_path):
    [problem] = problems_in(tmp_path, "edge_agent/relay.py", '"""Relay."""\n\nimport json\n\n' + TOPIC_FSTRING)
    assert str(problem).startswith("edge_agent/relay.py:6: ")


@pytest.mark.parametrize(
    "source",
    [
        'x = "see sc/445202101001 for the center"\n',  # not at the start
        'x = "scope/a"\n',
        'x = "sc"\n',
        'x = f"{root}/x"\n',
        "from protocol.topics import build, ROOT\nx = ROOT + '/'\n",
    ],
)
def test_other_strings_pass(tmp_path, source):
    assert problems_in(tmp_path, "fleet/ingest.py", source) == []


@pytest.mark.parametrize(
    "rel",
    ["protocol/topics2.py", "protocol/sub/x.py", "docs/example.py", "tests/test_protocol.py",
     "tests/test_protocol_doc.py"],
)
def test_topic_literal_allowed_in_the_contract(tmp_path, rel):
    assert problems_in(tmp_path, rel, TOPIC_LITERAL + TOPIC_FSTRING) == []


@pytest.mark.parametrize("rel", ["tests/test_fleet.py", "tests/support/centers.py", "tests/fleet/test_protocol_x.py",
                                 "firmware/sim/display.py",
                                 "tools/demo.py", "conftest.py"])
def test_topic_literal_fails_everywhere_else(tmp_path, rel):
    assert rules_of(problems_in(tmp_path, rel, TOPIC_LITERAL)) == ["topic-literal"]


@pytest.mark.parametrize("folder", [".venv/lib", "node_modules/x", ".run", "build/mpy", "fleet/__pycache__", ".git"])
def test_skipped_folders(tmp_path, folder):
    write(tmp_path, folder + "/x.py", TOPIC_LITERAL)
    assert lint.lint(tmp_path) == ([], 0)


# --- protocol/ stays MicroPython -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "import typing\n",
        "from typing import Optional\n",
        "from dataclasses import dataclass\n",
        "import pathlib\n",
        "import logging.handlers\n",
        "import machine\n",
        "def f():\n    import network\n",
        "import json, logging\n",
    ],
)
def test_protocol_forbidden_imports(tmp_path, source):
    problems = problems_in(tmp_path, "protocol/x.py", source)
    assert rules_of(problems) == ["protocol-imports"], problems
    assert "MicroPython" in problems[0].message


def test_protocol_allowed_imports(tmp_path):
    source = "import json\nfrom protocol.errors import ProtocolError\nfrom . import identity\n"
    assert problems_in(tmp_path, "protocol/x.py", source) == []


def test_protocol_named_regex_group(tmp_path):
    assert rules_of(problems_in(tmp_path, "protocol/x.py", 'P = "(?P<center>[0-9]{12})"\n')) == ["protocol-regex"]


def test_typing_is_fine_outside_protocol(tmp_path):
    assert problems_in(tmp_path, "fleet/x.py", "import typing\nimport logging\n") == []


# --- firmware logic does not touch hardware ------------------------------------------------------------


@pytest.mark.parametrize(
    "rel, source",
    [
        ("firmware/lib/queue_display.py", "import machine\n"),
        ("firmware/lib/rating.py", "from machine import Pin\n"),
        ("firmware/lib/net.py", "import network as net\n"),
        ("firmware/display/logic.py", "def f():\n    import machine\n"),
        ("firmware/lib/mainly.py", "import machine.Pin\n"),
    ],
)
def test_firmware_logic_importing_hardware_fails(tmp_path, rel, source):
    problems = problems_in(tmp_path, rel, source)
    assert rules_of(problems) == ["firmware-hardware"], problems


@pytest.mark.parametrize(
    "rel",
    ["firmware/display/main.py", "firmware/main.py", "firmware/pad/boot.py", "firmware/drivers/lcd.py",
     "firmware/pad/drivers/buttons.py", "firmware/sim/machine_stub.py", "firmware/sim/deep/x.py"],
)
def test_firmware_hardware_allowed_places(tmp_path, rel):
    assert problems_in(tmp_path, rel, "import machine\nimport network\nfrom machine import Pin\n") == []


def test_firmware_other_imports_pass(tmp_path):
    assert problems_in(tmp_path, "firmware/lib/x.py", "import time\nimport json\nfrom protocol import topics\n") == []


# --- running -------------------------------------------------------------------------------------------


def test_unparsable_file_is_reported(tmp_path):
    [problem] = problems_in(tmp_path, "fleet/broken.py", "def f(:\n")
    assert problem.rule == "syntax"
    assert str(problem).startswith("fleet/broken.py:1: ")


def test_rules_are_a_table():
    names = [rule.name for rule in lint.RULES]
    assert len(names) == len(set(names))
    assert {"topic-literal", "protocol-imports", "firmware-hardware"} <= set(names)


def test_custom_rule_table(tmp_path):
    rule = lint.Rule("no-print", lambda rel: True,
                     lambda tree: ((n.lineno, "print") for n in __import__("ast").walk(tree)
                                   if getattr(n, "id", None) == "print"))
    write(tmp_path, "a.py", "print(1)\n")
    problems, _ = lint.lint(tmp_path, rules=(rule,))
    assert [str(p) for p in problems] == ["a.py:1: [no-print] print"]


def test_main_exit_codes(tmp_path, capsys):
    write(tmp_path, "fleet/ok.py", "x = 1\n")
    assert lint.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("lint: OK") and out.count("\n") == 1
    write(tmp_path, "fleet/bad.py", TOPIC_LITERAL)
    assert lint.main([str(tmp_path)]) == 1
    assert capsys.readouterr().out.startswith("fleet/bad.py:1: ")


def test_the_repository_passes():
    result = subprocess.run([sys.executable, "-m", "tools.lint"], cwd=REPO, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, "python -m tools.lint failed:\n" + result.stdout + result.stderr
    assert result.stdout.startswith("lint: OK")
