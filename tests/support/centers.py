"""Configuration files for a test center."""

from __future__ import annotations

from pathlib import Path

from tests.support.staff import ADMIN_TOML

CENTER_CODE = "445202101001"


def write_edge_config(directory: Path, center_port: int, county_port: int, http_port: int,
                      printer: str = "file", code: str = CENTER_CODE, voice: str = "enabled = false",
                      extra: str = "", storage: str = "") -> Path:
    """`voice` is the body of [voice] (off unless a test is about it); `storage` more lines of [storage];
    `extra` is appended TOML."""
    directory.mkdir(parents=True, exist_ok=True)
    printer_block = {
        "file": 'kind = "file"\npath = "data/printer.bin"',
        "none": 'kind = "none"',
        "broken": 'kind = "file"\npath = "no-such-dir/printer.bin"',
    }[printer]
    text = f"""
[center]
code = "{code}"
name = "示例镇便民服务中心"
rating_timeout_s = 60

[[services]]
prefix = "A"
name = "社保业务"

[[services]]
prefix = "B"
name = "医保业务"

[[windows]]
number = 1
services = ["A", "B"]
staff_no = "1001"
staff_name = "张敏"

[[windows]]
number = 2
services = ["B"]
staff_no = "1002"
staff_name = "李强"

[[windows]]
number = 3
services = ["A"]
staff_no = "1003"
staff_name = "王芳"

[brokers.center]
port = {center_port}

[brokers.county]
port = {county_port}
backoff_max_s = 2

[uplink]
ack_timeout_s = 2

[http]
port = {http_port}

[storage]
data_dir = "data"
{storage}

[printer]
{printer_block}

[voice]
{voice}

{ADMIN_TOML}
{extra}
"""
    path = directory / "center.toml"
    path.write_text(text, encoding="utf-8")
    return path
