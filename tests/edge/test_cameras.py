"""Window cameras polled over real HTTP with digest auth, against a camera double on loopback."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from edge_agent.adapters.cameras import (
    CameraConfig,
    WindowCameras,
    jpeg_problem,
    parse_audio_report,
    parse_cameras_config,
)
from tests.support.camera_server import (
    HTML_ERROR,
    STREAM_PATH,
    STREAM_XML,
    TWO_WAY_AUDIO_PATH,
    TWO_WAY_AUDIO_XML,
    CameraServer,
    make_jpeg,
)
from tests.support.loop import LoopThread
from tests.support.waiting import wait_until
from tools.mosquitto import free_port


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    with LoopThread() as loop:
        yield loop


@pytest.fixture
def camera() -> Iterator[CameraServer]:
    camera = CameraServer().start()
    yield camera
    camera.stop()


def test_jpeg_markers_decide():
    jpeg = make_jpeg()
    assert jpeg_problem(jpeg) is None
    assert jpeg_problem(jpeg + b"\r\n") is None  # some cameras end the body with a line break
    assert jpeg_problem(jpeg[:-10]) == "a truncated JPEG (no end-of-image marker)"
    assert jpeg_problem(HTML_ERROR) == "an HTML page, not a JPEG"
    assert jpeg_problem(b"") == "an empty reply"
    assert jpeg_problem(b"\x89PNG\r\n") == "not a JPEG (no start-of-image marker)"


def test_audio_reports_of_both_kinds():
    assert parse_audio_report(TWO_WAY_AUDIO_XML % b"MicIn") == [{"id": "1", "input": "MicIn", "recording": True}]
    assert parse_audio_report(TWO_WAY_AUDIO_XML % b"")[0]["recording"] is False
    assert parse_audio_report(STREAM_XML % b"true") == [{"id": "1", "input": "G.711ulaw", "recording": True}]
    assert parse_audio_report(STREAM_XML % b"false")[0]["recording"] is False


def start(loop: LoopThread, *configs: CameraConfig) -> WindowCameras:
    cameras = WindowCameras(list(configs))
    cameras.request_timeout_s = 2.0  # the "hang" mode waits this long
    loop.run(cameras.start())
    return cameras


def test_a_camera_online_then_each_failure_mode_offline_then_back(loop, camera, caplog):
    caplog.set_level(logging.INFO)
    cameras = start(loop, CameraConfig(1, camera.url(), "admin", "Cam-12345", interval_s=0.1,
                                       audio_url=camera.url(TWO_WAY_AUDIO_PATH)))
    try:
        # The snapshot and the two-way audio are checked by separate requests: wait for both answers (reading
        # the audio right after the first good snapshot failed now and then on a loaded machine).
        health = wait_until(lambda: (cameras.health()["ok"] and cameras.health()["cameras"][0]["audio"]["ok"]
                                     and cameras.health()), what="online with its audio checked")
        state = health["cameras"][0]
        assert state["online"] and state["last_good_at"] and state["audio"]["ok"]
        assert camera.authorized >= 1  # it really went through digest auth
        for mode, reason in (("html", "an HTML page, not a JPEG"), ("truncated", "a truncated JPEG"),
                             ("refuse_auth", "HTTP 401"), ("hang", "no reply in time")):
            camera.mode = mode
            wait_until(lambda reason=reason: reason in cameras.health()["cameras"][0]["last_error"], what=mode)
            assert cameras.health()["ok"] is False and cameras.health()["offline_windows"] == [1]
            camera.mode = "ok"
            wait_until(lambda: cameras.health()["ok"], what=f"back online after {mode}")
        assert "Cam-12345" not in caplog.text and "Cam-12345" not in str(cameras.health())
    finally:
        loop.run(cameras.stop())


def test_wrong_password_and_refused_connection_are_offline(loop, camera):
    cameras = start(loop, CameraConfig(1, camera.url(), "admin", "wrong", interval_s=0.1),
                    CameraConfig(2, f"http://127.0.0.1:{free_port()}/ISAPI/Streaming/channels/101/picture",
                                 interval_s=0.1))
    try:
        wait_until(lambda: all(c["failures"] for c in cameras.health()["cameras"]), what="both polled")
        first, second = cameras.health()["cameras"]
        assert "HTTP 401" in first["last_error"] and first["last_good_at"] is None
        assert "Connect" in second["last_error"]
        assert cameras.health()["offline_windows"] == [1, 2]
    finally:
        loop.run(cameras.stop())


def test_a_camera_that_goes_away_keeps_its_last_good_time(loop):
    camera = CameraServer().start()
    cameras = start(loop, CameraConfig(3, camera.url(), "admin", "Cam-12345", interval_s=0.1))
    try:
        wait_until(lambda: cameras.health()["ok"], what="online")
        camera.stop()
        wait_until(lambda: not cameras.health()["ok"], what="offline")
        assert cameras.health()["cameras"][0]["last_good_at"] is not None
    finally:
        loop.run(cameras.stop())


def test_audio_input_off_or_missing_is_reported(loop, camera):
    cameras = start(loop, CameraConfig(1, camera.url(), "admin", "Cam-12345", interval_s=0.1,
                                       audio_url=camera.url(STREAM_PATH)))
    try:
        wait_until(lambda: cameras.health()["cameras"][0].get("audio", {}).get("ok"), what="audio on")
        camera.audio_mode = "none"
        wait_until(lambda: "no audio input" in cameras.health()["cameras"][0]["audio"]["last_error"],
                   what="audio off")
        assert cameras.health()["audio_down_windows"] == [1]
        camera.audio_mode = "missing"
        wait_until(lambda: "HTTP 404" in cameras.health()["cameras"][0]["audio"]["last_error"], what="404")
        wait_until(lambda: cameras.health()["ok"], what="the picture still fine")
    finally:
        loop.run(cameras.stop())


def test_config_problems_are_reported_with_their_path():
    problems: list[str] = []
    raw = [
        {"window": 1, "url": "http://10.0.0.21/ISAPI/Streaming/channels/101/picture", "username": "admin",
         "password": "x"},
        {"window": 1, "url": "ftp://cam", "interval_s": 0},
        {"window": 9, "url": "http://admin:pw@10.0.0.23/pic", "username": "admin", "lens": 4},
        "camera",
    ]
    cameras = parse_cameras_config(raw, "peripherals.cameras", problems, windows={1, 2, 3})
    assert [c.window for c in cameras] == [1]
    assert problems == [
        "peripherals.cameras[1].window: window 1 already has a camera",
        "peripherals.cameras[1].url: must be an http:// or https:// URL, got 'ftp://cam'",
        "peripherals.cameras[1].interval_s: must be 1..3600 seconds, got 0",
        "peripherals.cameras[2].lens: unknown key",
        "peripherals.cameras[2].window: must be one of the center's windows, got 9",
        "peripherals.cameras[2].url: put the user and password in username and password, not the URL",
        "peripherals.cameras[2].password: required with a username",
        "peripherals.cameras[3]: must be a table",
    ]
    assert parse_cameras_config({"window": 1}, "peripherals.cameras", problems := []) == []
    assert problems == ["peripherals.cameras: must be a list of tables ([[peripherals.cameras]])"]
