"""The center broker's Mosquitto config, generated from the center's TOML.

The center's TOML is the one file a technician edits: the port the boards and the agent use
(`brokers.center.port`) and the account files the agent keeps up to date for the fleet
(`[center_broker]`) are said there once, and the broker's config follows from them at every start of
the broker (the unit's ExecStartPre), so the two cannot disagree.

The broker listens on every interface: the boards reach it over the center's LAN. Only accounts connect
(`allow_anonymous false`) and a client id is bound to its user name (`use_username_as_clientid true`):
fleet.registration.broker_files.CENTER_BROKER_SETTINGS, which the edge cannot import (it installs without
the fleet), repeated here and checked equal by tests/edge/test_pi_package.py.

Before the fleet has sent the center's accounts (edge_agent.adapters.broker_accounts), the broker needs
one account: the agent's own, or the agent could not connect to receive them. `bootstrap_accounts`
writes that one account and an ACL for it when the files do not exist yet, and never touches files
that do (the fleet's, once installed).
"""

from __future__ import annotations

import base64
import hashlib
import os
import pwd
import secrets
from pathlib import Path

from edge_agent.config import CenterConfig
from protocol import topics

CENTER_BROKER_SETTINGS = ("allow_anonymous false", "use_username_as_clientid true")
# Mosquitto 2's own default for `mosquitto_passwd` ($7$: PBKDF2-HMAC-SHA512).
HASH_ITERATIONS = 101
MAX_QUEUED_MESSAGES = 1000


class BrokerSetupError(ValueError):
    pass


def mosquitto_config(config: CenterConfig, source: Path) -> str:
    """The center broker's mosquitto.conf: port, accounts, pid file, persistence; logs to journald."""
    files = config.center_broker_files
    if files is None:
        raise BrokerSetupError("[center_broker] password_file, acl_file and pid_file are required on a Pi: "
                               "the agent installs the fleet's accounts there and reloads the broker")
    lines = [
        f"# The center broker of {config.code}, generated from {source} by `service-center configure`",
        "# at every start of service-center-broker.service: edit the center's TOML, not this file.",
        "per_listener_settings false",
        f"listener {config.center_broker.port}",
        *CENTER_BROKER_SETTINGS,
        f"password_file {files.password_file}",
        f"acl_file {files.acl_file}",
        f"pid_file {files.pid_file}",
        # Retained displays and rating requests survive a restart of the broker alone.
        "persistence true",
        f"persistence_location {config.data_dir / 'broker'}/",
        # stderr goes to journald (the unit's logs, with its rotation limits).
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "connection_messages true",
        f"max_queued_messages {MAX_QUEUED_MESSAGES}",
        # Mosquitto started as root drops to `user` (default: mosquitto, who could not read the agent's 0600
        # account files); the unit starts it as the user that generated this file (sc-edge), so this changes
        # nothing there.
        f"user {pwd.getpwuid(os.geteuid()).pw_name}",
    ]
    return "\n".join(lines) + "\n"


def mosquitto_password_hash(password: str, salt: bytes | None = None, iterations: int = HASH_ITERATIONS) -> str:
    """`$7$<iterations>$<salt>$<hash>`: what `mosquitto_passwd` writes and Mosquitto 2 checks."""
    salt = salt if salt is not None else secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations, 64)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def bootstrap_accounts(config: CenterConfig) -> list[Path]:
    """The agent's own account and its ACL, where no account files exist yet; the files written."""
    files = config.center_broker_files
    username, password = config.center_broker.username, config.center_broker.password
    if files is None or not username or not password:
        raise BrokerSetupError("brokers.center.username and password are required: the agent connects to "
                               "the center broker with them")
    written = []
    if not files.password_file.exists():
        _write_private(files.password_file, f"{username}:{mosquitto_password_hash(password)}\n")
        written.append(files.password_file)
    if not files.acl_file.exists():
        everything_of_this_center = f"{topics.ROOT}/{config.code}/#"
        _write_private(files.acl_file, f"# until the fleet's accounts arrive: the agent only\nuser {username}\n"
                                       f"topic readwrite {everything_of_this_center}\n")
        written.append(files.acl_file)
    return written


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".new")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temporary, path)


def write_broker_files(config: CenterConfig, source: Path, out_dir: Path) -> list[Path]:
    """mosquitto.conf into `out_dir`, the first account files where missing, the persistence folder."""
    conf = mosquitto_config(config, source)
    written = bootstrap_accounts(config)
    (config.data_dir / "broker").mkdir(parents=True, exist_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "mosquitto.conf"
    target.write_text(conf, encoding="utf-8")
    return [target, *written]
