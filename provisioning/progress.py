"""Progress for the technician: one line per step, ✓ done, ✗ failed, - skipped."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

MARKS = {"ok": "✓", "failed": "✗", "skipped": "-"}
TERMINAL_WIDTH = 79
ASCII_MARKS = {"ok": "ok", "failed": "FAIL", "skipped": "skip"}  # for a console that cannot show ✓ ✗


class Step:
    def __init__(self, name: str) -> None:
        self.name = name
        self.detail = ""
        self.skipped = False

    def skip(self, why: str) -> None:
        self.skipped = True
        self.detail = why


class Progress:
    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out if out is not None else sys.stdout
        encoding = getattr(self.out, "encoding", None) or "utf-8"
        try:
            "".join(MARKS.values()).encode(encoding)
            self.marks = MARKS
        except (UnicodeEncodeError, LookupError):
            self.marks = ASCII_MARKS
        self.lines: list[str] = []
        isatty = getattr(self.out, "isatty", None)
        self._tty = bool(isatty and isatty())
        self._status_width = 0

    def line(self, text: str) -> None:
        self.lines.append(text)
        self._clear_status()
        print(text, file=self.out, flush=True)

    def status(self, text: str) -> None:
        """A passing note within a long step (which file is being copied), on a terminal only."""
        if not self._tty:
            return
        self._clear_status()
        self.out.write(text[:TERMINAL_WIDTH])
        self.out.flush()
        self._status_width = len(text[:TERMINAL_WIDTH])

    def _clear_status(self) -> None:
        if self._status_width:
            self.out.write("\r" + " " * self._status_width + "\r")
            self._status_width = 0

    def report(self, outcome: str, name: str, detail: str = "") -> None:
        self.line(f"{self.marks[outcome]} {name}" + (f": {detail}" if detail else ""))

    @contextmanager
    def step(self, name: str) -> Iterator[Step]:
        step = Step(name)
        try:
            yield step
        except BaseException:
            self.report("failed", name, step.detail)
            raise
        self.report("skipped" if step.skipped else "ok", name, step.detail)
