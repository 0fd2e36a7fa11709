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

from edge_agent.agent import EdgeAgent
from edge_agent.config import CenterConfig, ConfigError, load_config

log = logging.getLogger("edge_agent.agent")  # the name these lines always had


async def run_agent(config: CenterConfig, stop: asyncio.Event) -> None:
    """The agent and its web server until `stop` is set. Here, above both: the web app uses the agent
    (edge_agent.web.app imports edge_agent.agent), so the agent cannot start the web app itself."""
    # Imported here so that the quick subcommands (hash-password, business-token) load no web server.
    import uvicorn

    from edge_agent.web.app import create_app

    agent = EdgeAgent(config)
    await agent.start()
    server = uvicorn.Server(uvicorn.Config(create_app(agent), host=config.http_host, port=config.http_port,
                                           log_level="warning", lifespan="off"))
    server.install_signal_handlers = lambda: None  # we own the signals
    web = asyncio.create_task(server.serve(), name="web")
    log.info("edge agent for %s (%s) serving http://%s:%d/", config.name, config.code, config.http_host,
             config.http_port)
    stopping = asyncio.create_task(stop.wait(), name="stop_requested")
    try:
        await asyncio.wait({stopping, web}, return_when=asyncio.FIRST_COMPLETED)
        if not stopping.done():
            # No kiosk, no caller: better to exit and be restarted (systemd, the demo) than to run on unseen.
            raise RuntimeError("the web server stopped unexpectedly")
    finally:
        stopping.cancel()
        server.should_exit = True
        await asyncio.gather(web, return_exceptions=True)
        await agent.stop()


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
