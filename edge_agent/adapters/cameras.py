"""The window cameras: each camera's HTTP snapshot is polled, and its audio input where it reports one.

A camera is online when its latest snapshot was a whole JPEG (SOI at the start, EOI at the end):
an HTML error page, a 401, a timeout or a refused connection all count as failures. Hikvision and
most Chinese IP cameras serve snapshots at /ISAPI/Streaming/channels/101/picture behind HTTP
digest auth. The window's audio pickup (拾音器) is wired to the camera's audio input; where the camera
reports it, that report is polled too: Hikvision's /ISAPI/Streaming/channels/101 (is sound recorded
with the window's video: <Audio><enabled>) or /ISAPI/System/TwoWayAudio/channels (which audio inputs
the camera has). It tells how the camera is set up, not that the pickup hears anything. Passwords
never appear in health or logs.
"""

from __future__ import annotations

import asyncio
import logging
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from edge_agent.adapters.base import start_kept_running

log = logging.getLogger(__name__)

MAX_SNAPSHOT_BYTES = 16 * 1024 * 1024  # an 8 MP snapshot is 2-4 MB; more is not a snapshot
MAX_AUDIO_REPORT_BYTES = 64 * 1024
JPEG_START = b"\xff\xd8\xff"
JPEG_END = b"\xff\xd9"


@dataclass(frozen=True)
class CameraConfig:
    window: int
    url: str  # the snapshot URL
    username: str = ""
    password: str = ""
    interval_s: float = 30.0
    audio_url: str = ""  # where the camera reports its audio input; empty: no pickup on this camera


def _is_http_url(url: object) -> bool:
    if not isinstance(url, str):
        return False
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def parse_cameras_config(raw: object, path: str, problems: list[str], windows: set[int] | None = None
                         ) -> list[CameraConfig]:
    """[[peripherals.cameras]]: one table per camera; `windows` are the center's window numbers."""
    if not isinstance(raw, list):
        problems.append(f"{path}: must be a list of tables ([[{path}]])")
        return []
    cameras: list[CameraConfig] = []
    for i, item in enumerate(raw):
        where = f"{path}[{i}]"
        if not isinstance(item, dict):
            problems.append(f"{where}: must be a table")
            continue
        count = len(problems)
        for key in sorted(set(item) - {"window", "url", "username", "password", "interval_s", "audio_url"}):
            problems.append(f"{where}.{key}: unknown key")
        window = item.get("window")
        if isinstance(window, bool) or not isinstance(window, int) or (windows is not None and window not in windows):
            problems.append(f"{where}.window: must be one of the center's windows, got {window!r}")
        elif any(c.window == window for c in cameras):
            problems.append(f"{where}.window: window {window} already has a camera")
        for key in ("url", "audio_url"):
            value = item.get(key, "" if key == "audio_url" else None)
            if key == "audio_url" and value == "":
                continue
            if not _is_http_url(value):
                problems.append(f"{where}.{key}: must be an http:// or https:// URL, got {value!r}")
            elif urlsplit(value).username or urlsplit(value).password:
                problems.append(f"{where}.{key}: put the user and password in username and password, not the URL")
        username, password = item.get("username", ""), item.get("password", "")
        if not isinstance(username, str) or not isinstance(password, str):
            problems.append(f"{where}: username and password must be strings")
        elif username and not password:
            problems.append(f"{where}.password: required with a username")
        interval = item.get("interval_s", 30)
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not 1 <= interval <= 3600:
            problems.append(f"{where}.interval_s: must be 1..3600 seconds, got {interval!r}")
        if len(problems) == count:
            cameras.append(CameraConfig(window, item["url"], username, password, float(interval),
                                        item.get("audio_url", "")))
    return cameras


def jpeg_problem(data: bytes) -> str | None:
    """Why these bytes are not a whole JPEG image, or None when they are."""
    if not data:
        return "an empty reply"
    if not data.startswith(JPEG_START):
        head = data[:200].lstrip().lower()
        if head.startswith((b"<!doctype html", b"<html")) or b"<html" in head:
            return "an HTML page, not a JPEG"
        if head.startswith(b"<?xml") or head.startswith(b"<"):
            return "an XML or HTML reply, not a JPEG"
        return "not a JPEG (no start-of-image marker)"
    if not data.rstrip(b"\x00\r\n ").endswith(JPEG_END):
        return "a truncated JPEG (no end-of-image marker)"
    return None


def parse_audio_report(xml_bytes: bytes) -> list[dict]:
    """The audio inputs a Hikvision-style report lists (namespaces ignored), each with `recording`.

    StreamingChannel: one input, recording when <Audio><enabled> is true (sound goes with the video).
    TwoWayAudioChannelList: every channel with an audio input type (MicIn, LineIn) counts as recording,
    since its <enabled> only tells whether a talk session is open.
    """
    root = ElementTree.fromstring(xml_bytes)

    def local(tag: str) -> str:
        return tag.rsplit("}", 1)[-1]

    def fields(element: ElementTree.Element) -> dict[str, str]:
        return {local(child.tag): (child.text or "").strip() for child in element}

    inputs = []
    for element in root.iter():
        name = local(element.tag)
        if name == "TwoWayAudioChannel":
            values = fields(element)
            inputs.append({"id": values.get("id", ""), "input": values.get("audioInputType", ""),
                           "recording": bool(values.get("audioInputType"))})
        elif name == "Audio" and local(root.tag) == "StreamingChannel":
            values = fields(element)
            inputs.append({"id": values.get("audioInputChannelID", ""), "input": values.get("audioCompressionType", ""),
                           "recording": values.get("enabled", "").lower() == "true"})
    return inputs


def safe_url(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{':' + str(parts.port) if parts.port else ''}{parts.path}"


@dataclass
class CameraState:
    config: CameraConfig
    online: bool | None = None  # None: not polled yet
    last_good_at: float | None = None
    last_error: str = ""
    failures: int = 0
    audio_ok: bool | None = None
    audio_channels: tuple = ()
    audio_error: str = ""

    def health(self) -> dict:
        health = {"window": self.config.window, "url": safe_url(self.config.url), "online": bool(self.online),
                  "last_good_at": self.last_good_at, "last_error": self.last_error, "failures": self.failures}
        if self.config.audio_url:
            health["audio"] = {"ok": bool(self.audio_ok), "channels": list(self.audio_channels),
                               "last_error": self.audio_error}
        return health


class WindowCameras:
    name = "cameras"
    request_timeout_s = 10.0  # a camera slower than this is counted offline

    def __init__(self, cameras: list[CameraConfig]) -> None:
        self.cameras = cameras
        self.states = [CameraState(camera) for camera in cameras]
        self._client: httpx.AsyncClient | None = None
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        if self._tasks:
            return
        # trust_env=False: a proxy set for the county uplink must not sit between the agent and a LAN camera.
        self._client = httpx.AsyncClient(trust_env=False, follow_redirects=False)
        self._tasks = [start_kept_running(f"camera_{state.config.window}", self._poller(state), self._failed(state))
                       for state in self.states]

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def health(self) -> dict:
        offline = [s.config.window for s in self.states if not s.online]
        audio_down = [s.config.window for s in self.states if s.config.audio_url and not s.audio_ok]
        return {"ok": bool(self._tasks) and not offline, "offline_windows": offline,
                "audio_down_windows": audio_down, "cameras": [s.health() for s in self.states]}

    def _poller(self, state: CameraState):
        return lambda: self._poll_forever(state)

    @staticmethod
    def _failed(state: CameraState):
        def failed(exc: Exception) -> None:
            state.online, state.last_error = False, f"unexpected {type(exc).__name__}"
            state.failures += 1
        return failed

    async def _poll_forever(self, state: CameraState) -> None:
        while True:
            await self.poll(state)
            await asyncio.sleep(state.config.interval_s)

    def _auth(self, config: CameraConfig) -> httpx.DigestAuth | None:
        return httpx.DigestAuth(config.username, config.password) if config.username else None

    async def _get(self, url: str, config: CameraConfig, limit: int) -> bytes:
        """The body of a 200 reply (at most `limit` bytes); raises ValueError with a reason otherwise."""
        async with self._client.stream("GET", url, auth=self._auth(config), timeout=self.request_timeout_s) as reply:
            if reply.status_code == 401:
                raise ValueError("HTTP 401: user name or password refused")
            if reply.status_code != 200:
                raise ValueError(f"HTTP {reply.status_code}")
            body = bytearray()
            async for chunk in reply.aiter_bytes():
                body += chunk
                if len(body) > limit:
                    raise ValueError(f"a reply over {limit} bytes")
            return bytes(body)

    async def poll(self, state: CameraState) -> None:
        """One snapshot (and one audio report) of one camera; the outcome goes to its state."""
        config = state.config
        try:
            problem = jpeg_problem(await self._get(config.url, config, MAX_SNAPSHOT_BYTES))
        except ValueError as exc:
            problem = str(exc)
        except httpx.TimeoutException:
            problem = "no reply in time"
        except httpx.HTTPError as exc:
            problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if problem is None:
            if state.online is not True:
                log.info("camera of window %d (%s): online", config.window, safe_url(config.url))
            state.online, state.last_good_at, state.last_error = True, time.time(), ""
        else:
            if state.online is not False or problem != state.last_error:
                log.warning("camera of window %d (%s): %s", config.window, safe_url(config.url), problem)
            state.online, state.last_error = False, problem
            state.failures += 1
        if config.audio_url:
            await self._poll_audio(state)

    async def _poll_audio(self, state: CameraState) -> None:
        config = state.config
        try:
            channels = parse_audio_report(await self._get(config.audio_url, config, MAX_AUDIO_REPORT_BYTES))
            problem = None if any(c["recording"] for c in channels) else "the camera reports no audio input in use"
        except ElementTree.ParseError:
            channels, problem = [], "not an XML audio report"
        except ValueError as exc:
            channels, problem = [], str(exc)
        except httpx.TimeoutException:
            channels, problem = [], "no reply in time"
        except httpx.HTTPError as exc:
            channels, problem = [], type(exc).__name__
        if problem and problem != state.audio_error:
            log.warning("audio input of window %d: %s", config.window, problem)
        state.audio_ok, state.audio_channels, state.audio_error = problem is None, tuple(channels), problem or ""
