"""Delivering notifications: POST with retries and exponential backoff, on a thread of its own."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote_plus

import httpx

from fleet.notify.messages import Notification, render
from fleet.notify.targets import DINGTALK, JSON, WebhookTarget

log = logging.getLogger(__name__)

TIMEOUT_S = 10.0
MAX_BACKOFF_S = 300.0


def signed_url(target: WebhookTarget, now_ms: int) -> str:
    """DingTalk 加签: &timestamp=<ms>&sign=<base64 HMAC-SHA256 of "<ms>\\n<secret>">."""
    if target.kind != DINGTALK or target.secret is None:
        return target.url
    secret = target.secret.get_secret_value()
    digest = hmac.new(secret.encode(), f"{now_ms}\n{secret}".encode(), hashlib.sha256).digest()
    separator = "&" if "?" in target.url else "?"
    return f"{target.url}{separator}timestamp={now_ms}&sign={quote_plus(base64.b64encode(digest).decode())}"


def _accepted(target: WebhookTarget, response: httpx.Response) -> str | None:
    """None when the receiver took the message, else why not."""
    if response.status_code // 100 != 2:
        return f"HTTP {response.status_code}"
    if target.kind == JSON:
        return None
    # The robots answer 200 with {"errcode": 0, "errmsg": "ok"}, or a non-zero errcode on error.
    try:
        body = response.json()
    except ValueError:
        return "answer is not JSON"
    if body.get("errcode", 0) != 0:
        return f"errcode {body.get('errcode')}: {body.get('errmsg')}"
    return None


def deliver(target: WebhookTarget, body: dict[str, Any], attempts: int = 5, backoff_s: float = 2.0,
            wait: Callable[[float], bool] | None = None, client: httpx.Client | None = None) -> bool:
    """POST `body` to `target`, retrying failures `attempts` times in all with doubling waits.

    `wait(seconds)` sleeps and returns True to give up early (a stop signal). Never raises.
    """
    wait = wait or (lambda seconds: bool(time.sleep(seconds)))
    own = client is None
    client = client or httpx.Client(timeout=TIMEOUT_S)
    try:
        delay = backoff_s
        for attempt in range(1, attempts + 1):
            try:
                response = client.post(signed_url(target, int(time.time() * 1000)), json=body)
                problem = _accepted(target, response)
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if problem is None:
                return True
            last = attempt == attempts
            log.warning("notification to %s (%s) failed, attempt %d of %d: %s%s", target.safe_url(), target.kind,
                        attempt, attempts, problem, "; giving up" if last else f"; retrying in {delay:.0f} s")
            if last or wait(delay):
                return False
            delay = min(delay * 2, MAX_BACKOFF_S)
        return False
    finally:
        if own:
            client.close()


class Notifier:
    """Sends each notification to every target that wants its center, in the background."""

    def __init__(self, targets: Sequence[WebhookTarget], attempts: int = 5, backoff_s: float = 2.0) -> None:
        self.targets = list(targets)
        self.attempts = attempts
        self.backoff_s = backoff_s
        self._queue: queue.Queue[tuple[WebhookTarget, dict[str, Any]] | None] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.delivered = 0
        self.failed = 0

    def notify(self, notification: Notification) -> int:
        """Queue `notification` for its targets; returns how many. Never raises, never blocks."""
        count = 0
        for target in self.targets:
            if target.wants(notification.center_code):
                self._queue.put((target, render(target, notification)))
                count += 1
        return count

    def start(self) -> Notifier:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="fleet-notify", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop after the message in flight (queued ones are dropped, with a log line)."""
        self._stop.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(TIMEOUT_S + 5)
            self._thread = None
        left = self._queue.qsize()
        if left > 1:
            log.warning("%d notifications not sent: the fleet is stopping", left - 1)

    def _run(self) -> None:
        while not self._stop.is_set():
            item = self._queue.get()
            if item is None:
                break
            target, body = item
            try:
                ok = deliver(target, body, self.attempts, self.backoff_s, wait=self._stop.wait)
            except Exception:  # never let a bad target kill the thread
                log.exception("notification to %s failed", target.safe_url())
                ok = False
            if ok:
                self.delivered += 1
            else:
                self.failed += 1
