"""Where notifications go: one webhook target per line of FLEET_NOTIFY_WEBHOOKS (a JSON list)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, SecretStr

JSON = "json"  # our own plain JSON document
WECOM = "wecom"  # 企业微信群机器人
DINGTALK = "dingtalk"  # 钉钉群机器人


class WebhookTarget(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: Literal["json", "wecom", "dingtalk"] = JSON
    url: str
    # Only notifications about centers under this division prefix (a town's own robot); None: all.
    prefix: str | None = None
    # DingTalk "加签": the robot's secret; the URL then gets timestamp and sign parameters.
    secret: SecretStr | None = None

    def wants(self, center_code: str | None) -> bool:
        if self.prefix is None:
            return True
        return center_code is not None and center_code.startswith(self.prefix)

    def safe_url(self) -> str:
        """The URL without its query (robot URLs carry their access token there), for logs."""
        return self.url.split("?", 1)[0]
