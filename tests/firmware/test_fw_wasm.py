"""The shared firmware cases under real MicroPython (the WebAssembly port, driven by Node).

tests/firmware/cases/test_case_*.py hold plain functions with asserts. pytest
collects and runs them under CPython like any test; this module runs the very
same functions under MicroPython through tests/firmware/wasm/run.mjs and fails
on any case that fails there, or that MicroPython did not run at all.
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CASES = Path(__file__).with_name("cases")
RUNNER = Path(__file__).with_name("wasm") / "run.mjs"
PORT = ROOT / "node_modules/@micropython/micropython-webassembly-pyscript/micropython.mjs"


def shared_cases() -> list[tuple[str, str]]:
    """(module, function) of every test_* function of every case module, as pytest sees them."""
    found = []
    for path in sorted(CASES.glob("test_case_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                found.append((path.stem, node.name))
    return found


@cache
def micropython_results() -> tuple[dict, dict[tuple[str, str], dict]]:
    node = shutil.which("node")
    assert node, "node is not installed (make setup-test installs it)"
    assert PORT.exists(), f"{PORT} missing: run `npm install` (make does)"
    result = subprocess.run([node, str(RUNNER)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert lines and "summary" in lines[-1], f"runner crashed (exit {result.returncode}):\n{result.stderr[-3000:]}"
    by_case = {(line["module"], line["case"]): line for line in lines[:-1]}
    return lines[-1]["summary"], by_case


def test_the_runner_is_real_micropython_and_ran_exactly_the_shared_cases() -> None:
    summary, by_case = micropython_results()
    assert summary["implementation"].startswith("micropython ")
    assert len(shared_cases()) >= 60
    assert set(by_case) == set(shared_cases())
    assert summary["passed"] + summary["failed"] == len(by_case)


@pytest.mark.parametrize(("module", "case"), shared_cases(), ids=lambda v: v)
def test_case_passes_under_micropython(module: str, case: str) -> None:
    _, by_case = micropython_results()
    result = by_case.get((module, case))
    assert result is not None, f"{module}.{case} was not run under MicroPython"
    assert result["ok"], f"{module}.{case} failed under MicroPython:\n{result.get('error')}"
