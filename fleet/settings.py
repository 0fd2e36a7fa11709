"""Settings of the fleet service: one immutable object, built explicitly.

`Settings()` gives the defaults, `Settings.from_env()` reads FLEET_* environment
variables on top of them; the CLI overrides single fields with `model_copy`.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

DEFAULT_DATA_DIR = Path(".run/fleet")


def default_client_id() -> str:
    """Stable per host, so the broker keeps our session (queued events) across restarts."""
    return "fleet-ingest-" + socket.gethostname()


def parse_broker_url(url: str) -> tuple[str, int]:
    """'mqtt://host:port' (or 'host:port', or 'host') -> (host, port); port defaults to 1883."""
    parts = urlsplit(url if "://" in url else "mqtt://" + url)
    if parts.scheme != "mqtt":
        raise ValueError(f"broker URL must start with mqtt://, got {url!r}")
    if not parts.hostname:
        raise ValueError(f"broker URL has no host: {url!r}")
    return parts.hostname, parts.port or 1883


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    data_dir: Path = DEFAULT_DATA_DIR
    # Empty means a SQLite file in data_dir (filled in by the validator below).
    database_url: str = ""

    ingest_enabled: bool = True
    broker_host: str = "127.0.0.1"
    broker_port: int = Field(default=1883, ge=1, le=65535)
    broker_username: str | None = None
    broker_password: SecretStr | None = None
    mqtt_client_id: str = Field(default_factory=default_client_id)
    mqtt_keepalive_s: int = Field(default=30, ge=5)
    # How long the broker keeps our subscriptions and queues QoS 1 events while we are down.
    mqtt_session_expiry_s: int = Field(default=24 * 3600, ge=0)
    ingest_group: str = "fleet-ingest"

    heartbeat_timeout_s: float = Field(default=90.0, gt=0)
    sweep_interval_s: float = Field(default=10.0, gt=0)

    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=0, le=65535)
    timezone: str = "Asia/Shanghai"
    dashboard_refresh_s: int = Field(default=10, ge=1)

    @model_validator(mode="after")
    def _fill_and_check(self) -> Settings:
        if not self.database_url:
            object.__setattr__(self, "database_url", f"sqlite:///{self.data_dir / 'fleet.db'}")
        ZoneInfo(self.timezone)  # fail early on a misspelt zone
        return self

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def broker_url(self) -> str:
        return f"mqtt://{self.broker_host}:{self.broker_port}"

    def with_broker_url(self, url: str) -> Settings:
        host, port = parse_broker_url(url)
        return self.model_copy(update={"broker_host": host, "broker_port": port})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Defaults overridden by FLEET_<FIELD> variables (e.g. FLEET_DATABASE_URL, FLEET_BROKER_URL)."""
        env = os.environ if environ is None else environ
        values: dict[str, str] = {}
        for name in cls.model_fields:
            key = "FLEET_" + name.upper()
            if key in env:
                values[name] = env[key]
        settings = cls.model_validate(values)
        if "FLEET_BROKER_URL" in env:
            settings = settings.with_broker_url(env["FLEET_BROKER_URL"])
        return settings
