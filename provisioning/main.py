"""`provision`: the technician's command line (python -m provisioning).

One error boundary: a ProvisionError prints `provision: <message>` on stderr and exits 1; the commands
close their connection to the board on every path (commands.py), so nothing is left open.
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from provisioning import commands
from provisioning.errors import ProvisionError
from provisioning.transport import ANSWER_TIMEOUT_S


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is a ProvisionError like every other (same prefix, exit 1)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ProvisionError(f"{message} (see provision {self._subcommand_hint()}--help)")

    def _subcommand_hint(self) -> str:
        words = self.prog.split()
        return " ".join(words[1:]) + " " if len(words) > 1 else ""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="provision", description="Set up the ESP32 boards of a service center over USB.")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, required=True, metavar="COMMAND")

    listing = sub.add_parser("list", help="USB serial ports; ESP32 boards marked by their USB bridge")
    listing.add_argument("ports", nargs="*", default=[], metavar="PORT",
                         help="more ports to show (paths that pyserial does not list)")
    listing.add_argument("--probe", action="store_true",
                         help="ask each ESP32 port (and each PORT given) for MicroPython and its device id")
    listing.add_argument("--answer-timeout", type=float, default=ANSWER_TIMEOUT_S, help=argparse.SUPPRESS)

    device = sub.add_parser("device", help="set up one board: firmware, config.json, checks")
    device.add_argument("--port", required=True, help="serial port of the board, e.g. /dev/ttyUSB0 or COM3")
    device.add_argument("--role", required=True, help="queue_display or rating_pad")
    device.add_argument("--center", required=True, help="12-digit division code of the center")
    device.add_argument("--window", required=True, type=int, help="window number the device sits at")
    device.add_argument("--board", help="board definition in hardware/boards/ (default: the role's usual board)")
    device.add_argument("--broker", help="the center broker, host:port")
    device.add_argument("--wifi-ssid", help="the center's device Wi-Fi")
    device.add_argument("--wifi-password")
    device.add_argument("--site", help="site file (TOML) with [wifi] ssid, password and [broker] host, port")
    device.add_argument("--technician", help="who provisions (default: the login name), for the records")
    device.add_argument("--records", help="provisioning records file (default: provisioning/records/"
                                          "provisioning.jsonl)")
    device.add_argument("--dry-run", action="store_true", help="check and compare only; change nothing")
    device.add_argument("--answer-timeout", type=float, default=ANSWER_TIMEOUT_S, help=argparse.SUPPRESS)
    return parser


HANDLERS = {"list": commands.do_list, "device": commands.do_device}


def main(argv: list[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    try:
        args = build_parser().parse_args(argv)
        return HANDLERS[args.command](args, out)
    except ProvisionError as exc:
        print(f"provision: {exc}", file=err, flush=True)
        return 1
    except KeyboardInterrupt:
        print("provision: interrupted", file=err, flush=True)
        return 1
