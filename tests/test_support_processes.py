"""The tests' own program runner leaves nothing behind (issue 17: on a loaded machine, a fleet that did not answer
within the start's time-out kept running after its test had failed, and loaded the machine further)."""

from __future__ import annotations

import pytest

from tests.support.processes import Program


def test_a_program_that_never_serves_is_stopped_when_its_start_gives_up(tmp_path) -> None:
    program = Program(["-c", "import time; time.sleep(600)"], tmp_path / "silent.log", "http://127.0.0.1:9/")
    with pytest.raises(AssertionError, match="to serve"):
        program.start(timeout=1)
    assert program.process is not None and program.process.poll() is not None
