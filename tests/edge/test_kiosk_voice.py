"""The kiosk speaks its prompts in the calls' offline voice: real espeak-ng pieces, played by the page after a tap."""

from __future__ import annotations

import io
import re
import wave

import httpx
import pytest
from fastapi.testclient import TestClient

from edge_agent.agent import EdgeAgent
from edge_agent.config import parse_config
from edge_agent.voice import kiosk_prompt_parts
from edge_agent.web.app import create_app
from tests.edge.test_pages import make_agent  # noqa: F401  (the running agent fixture)
from tests.edge.test_staff_sign_in import raw_config
from tests.edge.test_voice import needs_espeak
from tests.support.waiting import wait_until

pytestmark = pytest.mark.broker
SERVICES = {"A": "社保业务", "B": "医保业务"}


def test_only_the_kiosks_own_prompts_can_be_spoken():
    assert kiosk_prompt_parts("confirm-B", SERVICES) == [["您选择的是"], ["医保业务"], ["请确认取号"]]
    assert kiosk_prompt_parts("ticket-B012", SERVICES) == [["您的号码是"], ["B", "零", "一", "二"], ["请取走号票"]]
    for other in ("confirm-Z", "ticket-Z001", "ticket-B01x", "say-anything", "ticket-" + "B" * 40):
        with pytest.raises(ValueError):
            kiosk_prompt_parts(other, SERVICES)


@needs_espeak
def test_the_kiosk_asks_aloud_and_says_the_number(make_agent, page):  # noqa: F811
    center = make_agent()
    spoken: list[str] = []
    page.on("request", lambda r: spoken.append(r.url) if "/kiosk/voice/" in r.url else None)
    page.goto(f"{center.base}/kiosk")
    page.locator('[data-waiting="B"]').filter(has_text="0").wait_for()
    page.get_by_role("button", name=re.compile("医保业务")).first.click()
    page.get_by_role("button", name="确认").click()
    page.locator("#ticket-number").filter(has_text="B001").wait_for()
    wait_until(lambda: len(spoken) >= 2, what="the kiosk to ask for both prompts")
    assert [u.rsplit("/", 1)[1] for u in spoken] == ["confirm-B.wav", "ticket-B001.wav"]

    answer = httpx.get(f"{center.base}/kiosk/voice/ticket-B001.wav")
    assert answer.status_code == 200 and answer.headers["content-type"] == "audio/wav"
    with wave.open(io.BytesIO(answer.content)) as sound:
        assert (sound.getnchannels(), sound.getsampwidth()) == (1, 2)
        assert sound.getnframes() / sound.getframerate() > 1.0  # a sentence, not silence
    assert httpx.get(f"{center.base}/kiosk/voice/anything-else.wav").status_code == 404


def test_kiosk_prompts_switched_off_in_the_config(tmp_path):
    raw = raw_config(tmp_path)
    agent = EdgeAgent(parse_config({**raw, "voice": {"enabled": True, "kiosk": False}}))
    try:
        client = TestClient(create_app(agent))
        assert client.get("/kiosk/voice/confirm-A.wav").status_code == 404
        assert "const SPEAKS = false" in client.get("/kiosk").text
    finally:
        agent.store.close()
