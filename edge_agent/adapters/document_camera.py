"""The document camera (高拍仪): a UVC device that must be present and able to deliver a frame.

Every `interval_s` the device node (/dev/videoN) is looked at and one frame is taken through
`v4l2-ctl` (Debian's v4l-utils): its format first (--get-fmt-video), then one frame by mmap
streaming after skipping the first two (often dark or partial). An MJPEG frame must be a whole
JPEG; an uncompressed one must be as long as the driver said; a frame of one repeated byte is
blank. A device another program holds (the window's scanning software) is reported as in use,
which is fine. Without v4l2-ctl the device is only checked to be present.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import stat
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from edge_agent.adapters.base import start_kept_running
from edge_agent.adapters.cameras import jpeg_problem

log = logging.getLogger(__name__)

V4L2_CTL = "v4l2-ctl"
MAX_FRAME_BYTES = 64 * 1024 * 1024  # a 4K YUYV frame is 16 MB


@dataclass(frozen=True)
class DocumentCameraConfig:
    device: str = "/dev/video0"
    interval_s: float = 60.0


def parse_document_camera_config(raw: object, path: str, problems: list[str]) -> DocumentCameraConfig | None:
    if not isinstance(raw, dict):
        problems.append(f"{path}: must be a table")
        return None
    count = len(problems)
    for key in sorted(set(raw) - {"device", "interval_s"}):
        problems.append(f"{path}.{key}: unknown key")
    device = raw.get("device", "/dev/video0")
    if not isinstance(device, str) or not device.startswith("/"):
        problems.append(f"{path}.device: must be an absolute device path such as /dev/video0, got {device!r}")
    interval = raw.get("interval_s", 60)
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not 5 <= interval <= 3600:
        problems.append(f"{path}.interval_s: must be 5..3600 seconds, got {interval!r}")
    return DocumentCameraConfig(device, float(interval)) if len(problems) == count else None


@dataclass(frozen=True)
class VideoFormat:
    width: int
    height: int
    pixel_format: str  # fourcc: MJPG, YUYV, ...
    size_image: int  # bytes of one frame as the driver says (0 for compressed formats on some drivers)


def parse_video_format(text: str) -> VideoFormat | None:
    """The capture format in `v4l2-ctl --get-fmt-video` output."""
    size = re.search(r"Width/Height\s*:\s*(\d+)/(\d+)", text)
    pixel = re.search(r"Pixel Format\s*:\s*'([^']{1,4})'", text)
    if not size or not pixel:
        return None
    image = re.search(r"Size Image\s*:\s*(\d+)", text)
    return VideoFormat(int(size[1]), int(size[2]), pixel[1].strip(), int(image[1]) if image else 0)


def frame_problem(frame: bytes, video_format: VideoFormat | None) -> str | None:
    """Why this frame is not a usable picture, or None."""
    if not frame:
        return "no frame"
    if video_format is not None and video_format.pixel_format in ("MJPG", "JPEG"):
        return jpeg_problem(frame)
    if video_format is not None and video_format.size_image and len(frame) != video_format.size_image:
        return f"a frame of {len(frame)} bytes where the driver announced {video_format.size_image}"
    if frame.count(frame[:1]) == len(frame):
        return "a blank frame (every byte the same)"
    return None


def device_problem(device: str) -> str | None:
    """Why `device` is not a video device node, or None."""
    try:
        mode = os.stat(device).st_mode
    except FileNotFoundError:
        return "no such device (unplugged?)"
    except OSError as exc:
        return f"cannot look at the device: {exc.strerror}"
    if not stat.S_ISCHR(mode):
        return "not a device node"
    return None


class DeviceBusy(Exception):
    """Another program has the camera open."""


async def _run(*args: str, timeout: float) -> bytes:
    process = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise RuntimeError(f"{args[0]} gave no frame within {timeout:g} s") from None
    message = err.decode(errors="replace").strip()
    if "busy" in message.lower():
        raise DeviceBusy(message)
    if process.returncode != 0:
        raise RuntimeError(message or f"{args[0]} exited with {process.returncode}")
    if len(out) > MAX_FRAME_BYTES:
        raise RuntimeError(f"{len(out)} bytes is more than a frame")
    return out


async def grab_with_v4l2_ctl(device: str, timeout: float = 10.0) -> tuple[bytes, VideoFormat | None]:
    """One frame and its format, through v4l2-ctl."""
    video_format = parse_video_format((await _run(V4L2_CTL, "-d", device, "--get-fmt-video",
                                                  timeout=timeout)).decode(errors="replace"))
    frame = await _run(V4L2_CTL, "-d", device, "--stream-mmap=3", "--stream-skip=2", "--stream-count=1",
                       "--stream-to=-", timeout=timeout)
    return frame, video_format


FrameGrabber = Callable[[str], Awaitable[tuple[bytes, VideoFormat | None]]]


class DocumentCamera:
    name = "document_camera"

    def __init__(self, config: DocumentCameraConfig, grab: FrameGrabber | None = None) -> None:
        self.config = config
        self._grab = grab  # None: v4l2-ctl when installed
        self.state = "stopped"
        self.last_error = ""
        self.last_frame_at: float | None = None
        self.video_format: VideoFormat | None = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        if self._task is None:
            self.state = "starting"
            self._task = start_kept_running(self.name, self._watch,
                                            lambda exc: self._set("no frame", f"unexpected {type(exc).__name__}"))

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self.state = "stopped"

    def health(self) -> dict:
        health = {"ok": self.state in ("ready", "in use", "present"), "state": self.state,
                  "device": self.config.device, "last_error": self.last_error, "last_frame_at": self.last_frame_at}
        if self.video_format is not None:
            health["format"] = (f"{self.video_format.pixel_format} "
                                f"{self.video_format.width}x{self.video_format.height}")
        return health

    async def _watch(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self.config.interval_s)

    def _set(self, state: str, error: str = "") -> None:
        if (state, error) != (self.state, self.last_error) and state not in ("starting", "stopped"):
            level = logging.INFO if state in ("ready", "in use", "present") else logging.WARNING
            log.log(level, "document camera %s: %s%s", self.config.device, state, f" ({error})" if error else "")
        self.state, self.last_error = state, error

    async def check(self) -> None:
        """Look at the device once: present, and a good frame from it."""
        problem = device_problem(self.config.device)
        if problem:
            self._set("offline", problem)
            return
        grab = self._grab
        if grab is None:
            if shutil.which(V4L2_CTL) is None:
                self._set("present", "v4l2-ctl (v4l-utils) is not installed: the frame is not checked")
                return
            grab = grab_with_v4l2_ctl
        try:
            frame, self.video_format = await grab(self.config.device)
        except DeviceBusy:
            self._set("in use")
            return
        except Exception as exc:
            self._set("no frame", str(exc) or type(exc).__name__)
            return
        problem = frame_problem(frame, self.video_format)
        if problem:
            self._set("bad frame", problem)
            return
        self.last_frame_at = time.time()
        self._set("ready")
