"""`provision batch FILE [OPTIONS]`: many boards in turn, each with exactly the steps of `provision device`.

FILE lists one board a row: CSV with the header `port,role,center,window[,board]`, or TOML with one
`[[boards]]` table a board (keys port, role, center, window, board). OPTIONS are those of `provision
device` (--broker, --site, --fleet, --token, --pack, --label-printer, --flash, ...) and apply to every
board. Each row is parsed by the same argument parser as `provision device` and run by the same
do_device, so a batch can never drift from a single run. A failing board does not stop the others; at
the end a summary table shows every board's outcome, and the exit status is 1 if any failed.
"""

from __future__ import annotations

import argparse
import csv
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from provisioning import commands
from provisioning.cli import build_parser
from provisioning.errors import ProvisionError
from provisioning.records import DEFAULT_RECORDS, read_records

REQUIRED_COLUMNS = ("port", "role", "center", "window")
COLUMNS = (*REQUIRED_COLUMNS, "board")
PER_BOARD_OPTIONS = tuple(f"--{column}" for column in COLUMNS)  # come from FILE, never from OPTIONS


@dataclass(frozen=True)
class BatchRow:
    where: str  # "line 3" / "boards[2]": for messages
    port: str
    role: str
    center: str
    window: str
    board: str | None = None

    def device_argv(self) -> list[str]:
        argv = ["device", "--port", self.port, "--role", self.role, "--center", self.center,
                "--window", self.window]
        return argv + (["--board", self.board] if self.board else [])


@dataclass
class BatchResult:
    row: BatchRow
    outcome: str  # ok / failed / not started
    device_id: str = ""
    error: str = ""


def read_rows(path: Path) -> list[BatchRow]:
    """The boards of a batch file; a malformed file is a ProvisionError before any board is touched."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # a CSV saved by a spreadsheet may start with a BOM
    except FileNotFoundError:
        raise ProvisionError(f"no such batch file {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProvisionError(f"cannot read the batch file {path}: {exc}") from None
    rows = _toml_rows(path, text) if path.suffix.lower() == ".toml" else _csv_rows(path, text)
    if not rows:
        raise ProvisionError(f"the batch file {path} lists no boards")
    return rows


def _csv_rows(path: Path, text: str) -> list[BatchRow]:
    reader = csv.DictReader(text.splitlines())
    header = [name.strip() for name in reader.fieldnames or []]
    missing = [column for column in REQUIRED_COLUMNS if column not in header]
    unknown = [column for column in header if column not in COLUMNS]
    if missing or unknown:
        raise ProvisionError(
            f"{path}: the header must be port,role,center,window[,board]"
            + (f"; missing {', '.join(missing)}" if missing else "")
            + (f"; unknown {', '.join(unknown)}" if unknown else ""))
    reader.fieldnames = header
    rows = []
    for record in reader:
        number = reader.line_num  # DictReader skips blank lines: count the file's own lines
        values = {key: (value or "").strip() for key, value in record.items() if key is not None}
        if not any(values.values()):
            continue  # a blank line
        if None in record:
            raise ProvisionError(f"{path} line {number}: more fields than the header has")
        rows.append(_row(path, f"line {number}", values))
    return rows


def _toml_rows(path: Path, text: str) -> list[BatchRow]:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProvisionError(f"{path} is not valid TOML: {exc}") from None
    tables = document.get("boards")
    if not isinstance(tables, list) or not all(isinstance(table, dict) for table in tables):
        raise ProvisionError(f"{path}: expected [[boards]] tables with port, role, center, window[, board]")
    rows = []
    for index, table in enumerate(tables):
        unknown = sorted(set(table) - set(COLUMNS))
        if unknown:
            raise ProvisionError(f"{path} boards[{index}]: unknown keys {', '.join(unknown)}")
        rows.append(_row(path, f"boards[{index}]", {key: str(value) for key, value in table.items()}))
    return rows


def _row(path: Path, where: str, values: dict[str, str]) -> BatchRow:
    missing = [column for column in REQUIRED_COLUMNS if not values.get(column)]
    if missing:
        raise ProvisionError(f"{path} {where}: no {', '.join(missing)}")
    return BatchRow(where, values["port"], values["role"], values["center"], values["window"],
                    values.get("board") or None)


def _check_shared_options(options: list[str]) -> list[str]:
    if options and options[0] == "--":
        options = options[1:]
    for option in options:
        if option.split("=", 1)[0] in PER_BOARD_OPTIONS:
            raise ProvisionError(f"{option.split('=', 1)[0]} comes from the batch file, one per board, "
                                 "not from the command line")
    return options


def do_batch(args: argparse.Namespace, out: TextIO) -> int:
    """Provision every board of the file in turn; the summary table at the end; 1 if any failed."""
    rows = read_rows(Path(args.file))
    options = _check_shared_options(list(args.options))
    parser = build_parser()
    shared = parser.parse_args(rows[0].device_argv() + options)  # bad OPTIONS fail here, before any board
    records_path = Path(shared.records) if shared.records else DEFAULT_RECORDS
    results = [BatchResult(row, "not started") for row in rows]
    try:
        for number, result in enumerate(results, 1):
            row = result.row
            print(f"== board {number} of {len(rows)}: {row.port} ({row.role}, center {row.center} window "
                  f"{row.window}, {row.where}) ==", file=out, flush=True)
            records_before = len(read_records(records_path))
            try:
                status = commands.do_device(parser.parse_args(row.device_argv() + options), out)
                result.outcome = "ok" if status == 0 else "failed"
            except ProvisionError as exc:
                result.outcome, result.error = "failed", str(exc)
                print(f"provision: {exc}", file=out, flush=True)
            result.device_id = _device_id_of_run(records_path, records_before)
    finally:
        _print_summary(results, out)
    return 1 if any(result.outcome != "ok" for result in results) else 0


def _device_id_of_run(records_path: Path, records_before: int) -> str:
    """The device id do_device recorded for this board (none when it failed before the board answered)."""
    new = read_records(records_path)[records_before:]
    return next((record.get("device_id") or "" for record in reversed(new)), "")


def _print_summary(results: list[BatchResult], out: TextIO) -> None:
    table = [("device id", "port", "outcome", "error")]
    table += [(r.device_id or "-", r.row.port, r.outcome, r.error) for r in results]
    widths = [max(len(row[column]) for row in table) for column in range(3)]
    print("", file=out)
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)) + "  " + row[3],
              file=out)
    failed = sum(1 for r in results if r.outcome != "ok")
    print(f"{len(results) - failed} of {len(results)} boards set up" + (f", {failed} not" if failed else ""),
          file=out, flush=True)
