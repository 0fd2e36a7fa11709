"""tools/import_cycles.py: no module of the project imports, even inside a function, a module that imports it
back (issue 16: edge_agent.agent <-> edge_agent.web.app, fleet.alerts <-> fleet.web.pages <-> fleet.overview
<-> fleet.center_view, fleet.db <-> fleet.satisfaction, provisioning.batch <-> provisioning.main were such)."""

from __future__ import annotations

from pathlib import Path

from tools import import_cycles


def write(root: Path, rel: str, source: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source, encoding="utf-8")


def cycles_in(root: Path) -> list[list[str]]:
    return import_cycles.cycles(import_cycles.import_graph(root, packages=("pkg",)))


def test_the_project_has_no_import_cycles():
    graph = import_cycles.import_graph()
    found = [group for group in import_cycles.cycles(graph) if frozenset(group) not in import_cycles.KNOWN_CYCLES]
    assert found == [], "\n".join(import_cycles.describe(group, graph) for group in found)


def test_the_walk_sees_the_project():
    graph = import_cycles.import_graph()
    assert "fleet.sessions" in graph["fleet.satisfaction"]
    assert "edge_agent.agent" in graph["edge_agent.web.app"]
    assert "provisioning.cli" in graph["provisioning.batch"]


def test_an_import_inside_a_function_closes_a_circle(tmp_path):
    write(tmp_path, "pkg/__init__.py", "")
    write(tmp_path, "pkg/low.py", "def f():\n    from pkg.high import g\n    return g\n")
    write(tmp_path, "pkg/high.py", "from pkg import low\n\ndef g():\n    return low\n")
    assert cycles_in(tmp_path) == [["pkg.high", "pkg.low"]]


def test_relative_and_from_package_imports_count(tmp_path):
    write(tmp_path, "pkg/__init__.py", "")
    write(tmp_path, "pkg/a.py", "from . import b\n")
    write(tmp_path, "pkg/b.py", "from .c import thing\n")
    write(tmp_path, "pkg/c.py", "import pkg.a\nthing = 1\n")
    assert cycles_in(tmp_path) == [["pkg.a", "pkg.b", "pkg.c"]]


def test_a_package_init_runs_with_its_submodules(tmp_path):
    # pkg.sub's __init__ imports pkg.top; pkg.top imports pkg.sub.leaf, which runs pkg.sub's __init__ first.
    write(tmp_path, "pkg/__init__.py", "")
    write(tmp_path, "pkg/sub/__init__.py", "def f():\n    from pkg import top\n")
    write(tmp_path, "pkg/sub/leaf.py", "")
    write(tmp_path, "pkg/top.py", "from pkg.sub.leaf import *\n")
    assert cycles_in(tmp_path) == [["pkg.sub", "pkg.top"]]


def test_type_checking_imports_and_layers_are_no_circle(tmp_path):
    write(tmp_path, "pkg/__init__.py", "")
    write(tmp_path, "pkg/low.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.high import g\n")
    write(tmp_path, "pkg/high.py", "from pkg import low\nimport json\n")
    assert cycles_in(tmp_path) == []
