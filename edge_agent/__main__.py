"""python -m edge_agent --config center.toml

python -m edge_agent business-token: prints a new token for the window's business system and the
[business_system] token_sha256 line for the center's config.

python -m edge_agent hash-password: prints the [admin] password_hash for a password read from the terminal
(or standard input), so the center administrator's password never stands in the file in clear.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import signal
import sys
from pathlib import Path

from edge_agent.agent import run_agent
from edge_agent.config import ConfigError, load_config


def hash_password() -> int:
    from edge_agent.sign_in import hash_secret

    password = getpass.getpass("中心管理员密码: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    if len(password) < 8:
        print("edge_agent: the password must have at least 8 characters", file=sys.stderr)
        return 1
    print(hash_secret(password))
    return 0


def business_token() -> int:
    """A new bearer token for the window's business system, and the line for the center's config."""
    import secrets

    from edge_agent.business import token_sha256

    token = secrets.token_urlsafe(32)
    print(f"token (give it to the business system): {token}")
    print(f'[business_system]\ntoken_sha256 = "{token_sha256(token)}"')
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["hash-password"]:
        return hash_password()
    if argv[:1] == ["business-token"]:
        return business_token()
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
