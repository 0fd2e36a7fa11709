"""python -m firmware.sim: run a simulated service center until SIGINT/SIGTERM.

    python -m firmware.sim --center 445202101001 --broker mqtt://127.0.0.1:1883 \\
        --windows 3 --state-dir .run/sim --http-port 8090 [--health-interval 10]

--windows N runs windows 1..N; a list "1,3,5" or a range "2-4" runs those.
--credentials FILE gives devices what registration with the fleet issued them
({device id: {"broker_username", "broker_password", "device_key"}}, the
fleet's answers as `make demo` saves them): the fleet can then sign their
configurations and commands. Devices not in it use a derived key (sim_key).
Each window gets a queue display and a rating pad; the control page at
http://127.0.0.1:PORT/ shows their screens and has the rating buttons.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path

from firmware.lib.config import parse_broker_url
from firmware.sim.center import SimulatedCenter, load_credentials
from firmware.sim.web import ControlServer
from protocol.identity import check_center_code


def parse_windows(text: str) -> list[int]:
    """'3' -> [1, 2, 3]; '1,3,5' -> [1, 3, 5]; '2-4' -> [2, 3, 4]."""
    windows: list[int] = []
    try:
        if "," not in text and "-" not in text:
            return list(range(1, int(text) + 1))
        for part in text.split(","):
            if "-" in part:
                low, high = part.split("-", 1)
                windows.extend(range(int(low), int(high) + 1))
            elif part.strip():
                windows.append(int(part))
    except ValueError:
        raise argparse.ArgumentTypeError(f"windows must be a count, a list or a range, got {text!r}") from None
    if not windows:
        raise argparse.ArgumentTypeError("no windows")
    return sorted(set(windows))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m firmware.sim", description="Simulated service-center devices")
    parser.add_argument("--center", required=True, help="12-digit center code, e.g. 445202101001")
    parser.add_argument("--broker", required=True, help="center broker URL, e.g. mqtt://127.0.0.1:1883")
    parser.add_argument("--windows", type=parse_windows, default=parse_windows("3"),
                        help="window count (3 = windows 1..3), list (1,3,5) or range (2-4)")
    parser.add_argument("--state-dir", type=Path, default=Path(".run/sim"),
                        help="per-device config.json and session files")
    parser.add_argument("--http-port", type=int, default=8090, help="control page port on 127.0.0.1")
    parser.add_argument("--health-interval", type=float, default=30, help="heartbeat period in seconds")
    parser.add_argument("--keepalive", type=int, default=30, help="MQTT keepalive in seconds")
    parser.add_argument("--quiet", action="store_true", help="do not print the devices' log lines")
    parser.add_argument("--credentials", type=Path, default=None,
                        help="JSON file: device id -> the fleet's registration answer (broker account, device key)")
    parser.add_argument("--trial-healthy", type=float, default=None,
                        help="seconds an updated firmware must stay healthy before it is kept (default: a board's)")
    return parser


async def serve(args: argparse.Namespace) -> None:
    host, port, username, password = parse_broker_url(args.broker)
    credentials = load_credentials(args.credentials) if args.credentials else None
    center = SimulatedCenter(args.center, host, port, args.windows, args.state_dir,
                             health_interval_s=args.health_interval, keepalive_s=args.keepalive,
                             username=username, password=password, log=None if args.quiet else print,
                             credentials=credentials, trial_healthy_s=args.trial_healthy)
    server = ControlServer(center, args.http_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    await center.start()
    print(f"simulator: {len(center.devices)} devices of center {args.center} on {host}:{port}", flush=True)
    for device in center.devices:
        registered = "registered key" if device.device_id in center.credentials else "derived key"
        print(f"simulator:   {device.device_id} {device.role} window {device.window} ({registered})", flush=True)
    print(f"simulator: control page {server.url}", flush=True)
    print(f"simulator: each panel drawn to {args.state_dir}/<device id>/screen.png on every change", flush=True)
    try:
        await stop.wait()
    finally:
        print("simulator: stopping", flush=True)
        await server.stop()
        await center.stop()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        parse_broker_url(args.broker)
        check_center_code(args.center)
        if args.credentials:
            load_credentials(args.credentials)
    except ValueError as exc:  # ProtocolError is a ValueError too
        print(f"simulator: {exc}", file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
