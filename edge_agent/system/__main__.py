"""python -m edge_agent.system {configure,backup,restore,screen} --config center.toml ...

One error boundary: a problem is printed as `service-center: message` on stderr with exit code 1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from edge_agent.config import ConfigError, load_config
from edge_agent.system import screens
from edge_agent.system.backup import DEFAULT_KEEP, BackupError, backup, restore
from edge_agent.system.broker import BrokerSetupError, write_broker_files

PROG = "service-center"
DEFAULT_CONFIG = Path("/etc/service-center/center.toml")
DEFAULT_GENERATED = Path("/var/lib/service-center-edge/generated")
DEFAULT_BACKUPS = Path("/var/backups/service-center-edge")
DEFAULT_SCREEN_PROFILES = Path("/var/lib/service-center-edge/screens")
SCREENS_FILE = "screens.json"


def configure(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    raw = tomllib.loads(args.config.read_text(encoding="utf-8"))
    listed, problems = screens.screens_of(raw)
    if problems:
        raise ConfigError(str(args.config), problems)
    for path in write_broker_files(config, args.config, args.out):
        print(f"wrote {path}")
    plan = args.out / SCREENS_FILE
    plan.write_text(json.dumps(screens.screens_plan(config, listed), ensure_ascii=False, indent=1) + "\n")
    plan.chmod(0o644)
    print(f"wrote {plan}")
    return 0


def run_backup(args: argparse.Namespace) -> int:
    archive = backup(load_config(args.config), args.to, keep=args.keep)
    print(f"backup written: {archive}")
    return 0


def run_restore(args: argparse.Namespace) -> int:
    done = restore(load_config(args.config), args.archive)
    print(f"restored {done.archive}" + (f"; the database it replaced is kept as {done.replaced}" if done.replaced
                                          else ""))
    return 0


def run_screen(args: argparse.Namespace) -> int:
    """Find the page's output with xrandr, switch it on (rotated as asked), become Chromium on it."""
    plan = json.loads((args.generated / SCREENS_FILE).read_text(encoding="utf-8"))
    listed = screens.plan_screens(plan)
    screen = next((item for item in listed if item.page == args.page), None)
    if screen is None:
        print(f"{PROG}: the center's TOML lists no screen for {args.page}", file=sys.stderr)
        return screens.NO_SCREEN_EXIT
    query = subprocess.run(["xrandr", "--query"], capture_output=True, text=True, check=True).stdout
    output = screens.output_for(screen, listed, screens.connected_outputs(query))
    if output is None:
        print(f"{PROG}: no connected output for the {args.page} screen", file=sys.stderr)
        return screens.NO_SCREEN_EXIT
    subprocess.run(["xrandr", "--output", output.name, "--auto", "--rotate", screen.rotate], check=False)
    placed = next((item for item in screens.connected_outputs(
        subprocess.run(["xrandr", "--query"], capture_output=True, text=True, check=True).stdout)
        if item.name == output.name), output)
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or "chromium"
    profile = args.profiles / args.page
    profile.mkdir(parents=True, exist_ok=True)
    url = next(item["url"] for item in plan if item["page"] == args.page)
    command = screens.chromium_command(browser, url, placed, str(profile))
    os.execvp(command[0], command)  # systemd watches Chromium itself, and restarts the unit when it dies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description="The edge agent on a Raspberry Pi")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="the center's TOML")
    commands = parser.add_subparsers(dest="command", required=True)
    step = commands.add_parser("configure", help="generate the center broker's config from the center's TOML")
    step.add_argument("--out", type=Path, default=DEFAULT_GENERATED)
    step.set_defaults(run=configure)
    step = commands.add_parser("backup", help="back up the queue database and the ID-card salt")
    step.add_argument("--to", type=Path, default=DEFAULT_BACKUPS)
    step.add_argument("--keep", type=int, default=DEFAULT_KEEP, help="archives kept (the newest)")
    step.set_defaults(run=run_backup)
    step = commands.add_parser("restore", help="put a backup's database and salt back (the agent stopped)")
    step.add_argument("archive", type=Path)
    step.set_defaults(run=run_restore)
    step = commands.add_parser("screen", help="Chromium in kiosk mode on the page's screen")
    step.add_argument("page", choices=screens.PAGES)
    step.add_argument("--profiles", type=Path, default=DEFAULT_SCREEN_PROFILES)
    step.add_argument("--generated", type=Path, default=DEFAULT_GENERATED, help="where configure wrote screens.json")
    step.set_defaults(run=run_screen)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (ConfigError, BackupError, BrokerSetupError, OSError, subprocess.SubprocessError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
