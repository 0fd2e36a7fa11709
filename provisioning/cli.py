"""The `provision` command line's parser (provisioning.main runs it; provisioning.batch parses each board's
`provision device` options with it), below both so that neither imports the other."""

from __future__ import annotations

import argparse

from provisioning import label
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
    device.add_argument("--center-config", metavar="CENTER.toml",
                        help="the center's edge config: its service and staff names go into the device's own "
                             "font (/font.bin), so the panel can draw them")
    device.add_argument("--technician", help="who provisions (default: the login name), for the records")
    device.add_argument("--records", help="provisioning records file (default: provisioning/records/"
                                          "provisioning.jsonl)")
    device.add_argument("--dry-run", action="store_true", help="check and compare only; change nothing")
    _fleet_arguments(device)
    device.add_argument("--new-credentials", action="store_true",
                        help="with --fleet: have the fleet issue a new broker password and device key even when "
                             "the board holds valid ones (by default a rerun keeps them)")
    device.add_argument("--pack", metavar="FILE",
                        help="credential pack (JSON saved from the fleet) for provisioning offline: takes its next "
                             "free slot; also the fallback when --fleet does not answer")
    device.add_argument("--flash", metavar="IMAGE.bin",
                        help="first write this MicroPython image (ESP32 .bin) with esptool, then go on")
    device.add_argument("--any-image", action="store_true",
                        help="with --flash: write the image even when it is not a release of the production image "
                             "listed in firmware/image/image.json (a bench board)")
    device.add_argument("--flash-no-reset", action="store_true",
                        help="with --flash: the board is in download mode already (BOOT held while pressing EN); "
                             "do not reset it through the USB bridge's DTR/RTS lines")
    device.add_argument("--label-printer", metavar="TARGET", type=label.printer_target_argument,
                        help="print a label after the setup: a file or device path, or tcp:HOST:PORT")
    device.add_argument("--no-check", action="store_true",
                        help="reset the board but do not wait for its birth or run the self-test (the laptop "
                             "cannot reach the center broker)")
    device.add_argument("--online-timeout", type=float, default=60.0,
                        help="seconds to wait for the device's birth after its reset (default 60)")
    device.add_argument("--self-test-time", type=float, default=60.0,
                        help="seconds the technician has to press each button of a pad (a display shows its "
                             "test pattern this long); default 60")
    device.add_argument("--answer-timeout", type=float, default=ANSWER_TIMEOUT_S, help=argparse.SUPPRESS)

    batch_command = sub.add_parser(
        "batch", help="set up many boards in turn, from a CSV or TOML file",
        description="FILE: CSV (header port,role,center,window[,board]) or TOML ([[board]] tables with those "
                    "keys). OPTIONS: any option of `provision device` except --port, --role, --center, "
                    "--window and --board; it applies to every board.")
    batch_command.add_argument("file", metavar="FILE")
    batch_command.add_argument("options", nargs=argparse.REMAINDER, metavar="OPTIONS")

    sync = sub.add_parser("sync", help="register with the fleet the devices provisioned offline from a pack")
    _fleet_arguments(sync)
    sync.add_argument("--technician", help="who syncs (default: the login name), for the records")
    sync.add_argument("--records", help="provisioning records file; the pending registrations are next to it")
    return parser


def _fleet_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fleet", metavar="URL", help="the fleet, e.g. https://fleet.example (default: FLEET_URL)")
    parser.add_argument("--token", help="the technician's fleet API token (default: FLEET_TOKEN, which keeps it "
                                        "out of the process list)")
    parser.add_argument("--insecure", action="store_true",
                        help="accept an http:// fleet URL: the API token, broker passwords and device keys then "
                             "cross the network unencrypted (a test fleet only); the records say so")
