"""`provision batch FILE`: two virtual boards and a bad port; one failure does not stop the others."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from provisioning.batch import read_rows
from provisioning.errors import ProvisionError

CENTER = "445202101001"
SHARED = ["--broker", "192.168.10.2:1883", "--wifi-ssid", "center-devices", "--wifi-password", "s3cret",
          "--answer-timeout", "5", "--no-check"]


def test_a_batch_sets_up_every_board_and_reports_the_bad_port(board_factory, provision, tmp_path):
    pad = board_factory(mac="a4:cf:12:ab:34:cd")
    display = board_factory(mac="a4:cf:12:ab:34:ce")
    boards = tmp_path / "boards.csv"
    boards.write_text("port,role,center,window,board\n"
                      f"{pad.port},rating_pad,{CENTER},3,\n"
                      f"/dev/ttyUSB-nothing-here,rating_pad,{CENTER},4,\n"
                      f"{display.port},queue_display,{CENTER},5,esp32-devkitc-max7219\n")
    result = provision("batch", str(boards), *SHARED, "--records", str(provision.records))
    assert result.status == 1
    assert json.loads(pad.files()["/config.json"])["window"] == 3
    config = json.loads(display.files()["/config.json"])
    assert (config["window"], config["role"]) == (5, "queue_display")
    summary = result.out.splitlines()[-5:]
    assert summary[0].split() == ["device", "id", "port", "outcome", "error"]
    assert summary[1].split()[:3] == ["dev-a4cf12ab34cd", pad.port, "ok"]
    assert summary[2].split()[:3] == ["-", "/dev/ttyUSB-nothing-here", "failed"]
    assert "no such port /dev/ttyUSB-nothing-here" in summary[2]
    assert summary[3].split()[:3] == ["dev-a4cf12ab34ce", display.port, "ok"]
    assert summary[4] == "2 of 3 boards set up, 1 not"
    outcomes = [(r["port"], r["outcome"]) for r in provision.read_records()]
    assert outcomes == [(pad.port, "ok"), ("/dev/ttyUSB-nothing-here", "failed"), (display.port, "ok")]


def test_a_batch_where_every_board_works_exits_0(board, provision, tmp_path):
    boards = tmp_path / "boards.toml"
    boards.write_text(f'[[boards]]\nport = "{board.port}"\nrole = "rating_pad"\ncenter = "{CENTER}"\nwindow = 7\n')
    result = provision("batch", str(boards), *SHARED, "--records", str(provision.records))
    assert result.status == 0, result.out
    assert result.out.splitlines()[-1] == "1 of 1 boards set up"


def test_per_board_options_and_bad_shared_options_are_refused_before_any_board(board, provision, tmp_path):
    boards = tmp_path / "boards.csv"
    boards.write_text(f"port,role,center,window\n{board.port},rating_pad,{CENTER},3\n")
    result = provision("batch", str(boards), "--window", "4")
    assert result.status == 1 and "--window comes from the batch file" in result.err
    result = provision("batch", str(boards), "--no-such-option")
    assert result.status == 1 and "unrecognized arguments: --no-such-option" in result.err
    assert board.programs == []


@pytest.mark.parametrize(("name", "text", "message"), [
    ("b.csv", "port,role,center\nx,rating_pad,1\n", "missing window"),
    ("b.csv", "port,role,center,window,colour\n", "unknown colour"),
    ("b.csv", "port,role,center,window\n", "lists no boards"),
    ("b.csv", "port,role,center,window\n/dev/x,rating_pad,,3\n", "line 2: no center"),
    ("b.toml", "[[boards]]\nport = 1\nwheels = 4\n", "unknown keys wheels"),
    ("b.toml", "boards = 3\n", "expected [[boards]] tables"),
    ("b.toml", "[[boards]\n", "is not valid TOML"),
])
def test_malformed_batch_files(tmp_path: Path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ProvisionError, match=None) as caught:
        read_rows(path)
    assert message in str(caught.value)


def test_csv_rows_with_optional_board_and_blank_lines(tmp_path):
    path = tmp_path / "b.csv"
    path.write_text("\ufeffport,role,center,window\n/dev/ttyUSB0,rating_pad,445202101001,3\n\n"
                    "/dev/ttyUSB1,queue_display,445202101001,4\n")
    rows = read_rows(path)
    assert [(r.port, r.window, r.board, r.where) for r in rows] == [
        ("/dev/ttyUSB0", "3", None, "line 2"), ("/dev/ttyUSB1", "4", None, "line 4")]
