"""Settings of the fleet service: one immutable object, built explicitly.

`Settings()` gives the defaults, `Settings.from_env()` reads FLEET_* environment
variables on top of them; the CLI overrides single fields with `model_copy`.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from fleet.notify.targets import WebhookTarget

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

    # Users: browser sessions. Without a signing key the database keeps its own random one.
    cookie_signing_key: SecretStr | None = None
    session_max_age_s: int = Field(default=12 * 3600, ge=60)
    # Session cookies only travel over HTTPS (the county's reverse proxy). Turn it off (FLEET_SESSION_COOKIE_SECURE=0)
    # only for plain-http use on one machine (`make demo`, tests): browsers do not send a Secure cookie over http.
    session_cookie_secure: bool = True
    # Failed logins: this many for one user name, or from one client address, within login_failure_window_s
    # lock that name or address for login_lockout_s (counted in the database, so across API replicas).
    login_max_failures: int = Field(default=5, ge=1)
    login_max_failures_per_source: int = Field(default=20, ge=1)  # higher: an office may share one address
    login_failure_window_s: float = Field(default=15 * 60.0, gt=0)
    login_lockout_s: float = Field(default=15 * 60.0, gt=0)

    # Health history (HealthSample): kept this long and at most this many samples per device.
    health_history_max_age_s: float = Field(default=3 * 24 * 3600, gt=0)
    health_history_max_samples: int = Field(default=3000, ge=1)

    # Alerts (fleet.alerts): evaluated every alert_sweep_interval_s, only while a center is open.
    alert_sweep_interval_s: float = Field(default=30.0, gt=0)
    device_offline_alert_min: float = Field(default=10.0, ge=0)
    edge_offline_alert_min: float = Field(default=5.0, ge=0)
    flap_threshold: int = Field(default=10, ge=2)  # drops within flap_window_s that make a device "flapping"
    flap_window_s: float = Field(default=3600.0, gt=0)
    alert_reopen_window_s: float = Field(default=3600.0, ge=0)  # a condition back within this reopens its alert
    wait_target_min: float = Field(default=30.0, gt=0)  # service-level target for issued -> called
    window_paused_alert_min: float = Field(default=15.0, ge=0)
    window_empty_alert_min: float = Field(default=30.0, ge=0)  # 空岗: no staff signed in at a window, opening time
    # A window whose 评价覆盖率 today (rated / served) is below this, once it has served enough to judge:
    # its pad unplugged or ignored (国办发〔2019〕51号: every service is rated).
    rating_coverage_alert_percent: float = Field(default=80.0, ge=0, le=100)
    rating_coverage_min_served: int = Field(default=5, ge=1)
    opening_hours: str = "08:30-12:00,14:00-17:30"  # default for every center; per-center in CenterHours
    # Notifications (fleet.notify): a JSON list of {"kind": json|wecom|dingtalk, "url", "prefix"?, "secret"?}.
    notify_webhooks: list[WebhookTarget] = Field(default_factory=list)
    notify_attempts: int = Field(default=5, ge=1)
    notify_backoff_s: float = Field(default=2.0, gt=0)
    # 好差评 follow-up (fleet.cases) and suspicious ratings (fleet.satisfaction).
    case_deadline_working_days: int = Field(default=5, ge=1)
    # A resident's callback phone (fleet.cases.contact) is erased this many days after its case closed.
    callback_phone_keep_days: int = Field(default=30, ge=0)
    rating_quick_s: float = Field(default=15.0, ge=0)  # a rating sooner than this after the call is suspicious
    rating_burst_count: int = Field(default=5, ge=2)  # this many top marks at one window ...
    rating_burst_window_s: float = Field(default=120.0, gt=0)  # ... within this many seconds
    # Device configuration and commands (fleet.devconfig). Device keys are encrypted with a key derived from
    # device_key_secret; without it, a random secret in <data_dir>/device-key-secret (mode 0600) is used.
    device_key_secret: SecretStr | None = None
    config_repush_s: float = Field(default=300.0, gt=0)  # drift: re-publish a desired config at most this often
    command_timeout_s: float = Field(default=60.0, gt=0)
    # The province's unified 好差评 system (fleet.province): ratings bound to a 办件编号 are POSTed there as JSON,
    # with `Authorization: Bearer <province_token>` when one is set. None: nothing is reported (or queued).
    province_endpoint: str | None = None
    province_token: SecretStr | None = None
    province_timeout_s: float = Field(default=10.0, gt=0)
    province_retry_min_s: float = Field(default=5.0, gt=0)  # the wait after a first failed attempt, doubled ...
    province_retry_max_s: float = Field(default=1800.0, gt=0)  # ... up to this
    province_interval_s: float = Field(default=5.0, gt=0)  # how often the reporter looks for due reports

    @field_validator("notify_webhooks", mode="before")
    @classmethod
    def _webhooks_from_json(cls, value: object) -> object:
        return json.loads(value) if isinstance(value, str) else value

    @field_validator("opening_hours")
    @classmethod
    def _check_hours(cls, value: str) -> str:
        from fleet.calendar import parse_hours

        parse_hours(value)
        return value

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
