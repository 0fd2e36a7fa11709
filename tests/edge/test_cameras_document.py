"""The document camera (高拍仪). No UVC device exists on the test machine: the device node and the
frame check are tested separately. An absent path and a plain file are refused by the real checks;
/dev/null (a character device, so it passes the node check) goes through the real v4l2-ctl, which
refuses it; the frame check is fed stub frames (a real JPEG, cut and blank frames, raw frames)."""

from __future__ import annotations

import shutil

import pytest

from edge_agent.adapters.document_camera import (
    DeviceBusy,
    DocumentCamera,
    DocumentCameraConfig,
    VideoFormat,
    frame_problem,
    parse_document_camera_config,
    parse_video_format,
)
from tests.support.aio import run_async
from tests.support.camera_server import make_jpeg

# What `v4l2-ctl --get-fmt-video` prints for a typical USB document camera.
GET_FMT_MJPG = """Format Video Capture:
\tWidth/Height      : 2592/1944
\tPixel Format      : 'MJPG' (Motion-JPEG)
\tField             : None
\tBytes per Line    : 0
\tSize Image        : 10077696
\tColorspace        : sRGB
"""
GET_FMT_YUYV = GET_FMT_MJPG.replace("'MJPG' (Motion-JPEG)", "'YUYV' (YUYV 4:2:2)").replace(
    "2592/1944", "640/480").replace("10077696", "614400")

MJPG = parse_video_format(GET_FMT_MJPG)
YUYV = parse_video_format(GET_FMT_YUYV)


def test_the_format_is_read_from_v4l2_ctl_output():
    assert MJPG == VideoFormat(2592, 1944, "MJPG", 10077696)
    assert YUYV == VideoFormat(640, 480, "YUYV", 614400)
    assert parse_video_format("Cannot open device /dev/video0, exiting.") is None


def test_frames_are_checked_for_their_format(tmp_path):
    stub = tmp_path / "frame.jpg"
    stub.write_bytes(make_jpeg())
    assert frame_problem(stub.read_bytes(), MJPG) is None
    assert "truncated" in frame_problem(stub.read_bytes()[:-100], MJPG)
    assert frame_problem(b"", YUYV) == "no frame"
    assert frame_problem(bytes(range(256)) * 2400, YUYV) is None
    assert "614400" in frame_problem(bytes(range(256)) * 100, YUYV)
    assert frame_problem(b"\x10" * 614400, YUYV) == "a blank frame (every byte the same)"


def run_check(camera: DocumentCamera) -> dict:
    run_async(camera.check())
    return camera.health()


def test_an_absent_device_or_a_plain_file_is_offline(tmp_path):
    health = run_check(DocumentCamera(DocumentCameraConfig(str(tmp_path / "video7"))))
    assert (health["ok"], health["state"], health["last_error"]) == (False, "offline", "no such device (unplugged?)")
    plain = tmp_path / "video0"
    plain.write_bytes(make_jpeg())
    health = run_check(DocumentCamera(DocumentCameraConfig(str(plain))))
    assert (health["ok"], health["last_error"]) == (False, "not a device node")


@pytest.mark.skipif(shutil.which("v4l2-ctl") is None, reason="v4l-utils not installed")
def test_a_device_that_is_not_a_camera_fails_the_real_v4l2_ctl():
    health = run_check(DocumentCamera(DocumentCameraConfig("/dev/null")))
    assert health["ok"] is False and health["state"] == "no frame"
    assert "/dev/null" in health["last_error"]


def test_frames_from_the_grabber_decide_the_state(tmp_path):
    stub = tmp_path / "frame.jpg"
    stub.write_bytes(make_jpeg())
    frames = [(stub.read_bytes(), MJPG), (stub.read_bytes()[:50], MJPG), DeviceBusy("Device or resource busy"),
              RuntimeError("VIDIOC_STREAMON returned -1 (No space left on device)")]

    async def grab(device: str):
        item = frames.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    camera = DocumentCamera(DocumentCameraConfig("/dev/null"), grab=grab)
    health = run_check(camera)
    assert (health["ok"], health["state"], health["format"]) == (True, "ready", "MJPG 2592x1944")
    assert health["last_frame_at"]
    health = run_check(camera)
    assert (health["ok"], health["state"]) == (False, "bad frame") and "truncated" in health["last_error"]
    assert run_check(camera)["state"] == "in use" and camera.health()["ok"]
    health = run_check(camera)
    assert (health["ok"], health["state"]) == (False, "no frame") and "STREAMON" in health["last_error"]


def test_config_problems_are_reported_with_their_path():
    problems: list[str] = []
    assert parse_document_camera_config({"device": "video0", "interval_s": 1, "fps": 5},
                                        "peripherals.document_camera", problems) is None
    assert problems == [
        "peripherals.document_camera.fps: unknown key",
        "peripherals.document_camera.device: must be an absolute device path such as /dev/video0, got 'video0'",
        "peripherals.document_camera.interval_s: must be 5..3600 seconds, got 1",
    ]
    assert parse_document_camera_config({}, "d", []) == DocumentCameraConfig("/dev/video0", 60.0)
