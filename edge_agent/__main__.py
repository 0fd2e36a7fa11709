"""python -m edge_agent --config center.toml"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from edge_agent.agent import run_agent
from edge_agent.config import ConfigError, load_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="edge_agent", description="The service center's edge agent")
    parser.add_argument("--config", type=Path, required=True, help="the center's TOML configuration")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    # force: a library (python-escpos) calls basicConfig on import
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"edge_agent: {exc}", file=sys.stderr)
        return 1

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_agent(config, stop)

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
