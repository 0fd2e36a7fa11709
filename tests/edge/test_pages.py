"""The agent's pages in real headless Chromium: kiosk (guide, ID card, scanner), staff caller, hall display.

The agent runs in-process (real SQLite, real Mosquitto, real uvicorn) so a test can present an ID card the way
the card reader adapter does: `agent.card_presented(card)`.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
import wave
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

import httpx
import pytest
import uvicorn

from edge_agent.agent import EdgeAgent
from edge_agent.config import parse_config
from edge_agent.guide import parse_items
from edge_agent.voice import CALL_FILE, PieceCache
from tests.edge.test_voice import FAKE_PLAYER, needs_espeak, plays
from tests.support.escpos_decoder import decode
from tests.support.loop import LoopThread
from tests.support.staff import ADMIN_HASH, ADMIN_PASSWORD, PINS, set_pins, signed_in
from tests.support.waiting import wait_until
from tools.mosquitto import free_port

pytestmark = pytest.mark.broker

CENTER = "445202101001"
NOTICE = "今日社保窗口12:00-13:30午休，请合理安排时间。"
ITEMS = [
    {"code": "SB-001", "name": "城乡居民养老保险参保登记", "prefix": "A", "conditions": "年满16周岁的城乡居民",
     "materials": [{"name": "居民身份证", "originals": 1, "copies": 1, "note": "本人"},
                   {"name": "户口簿", "originals": 1, "copies": 1}],
     "kind": "immediate", "location": "一楼社保窗口", "phone": "0663-8881001"},
    {"code": "SB-002", "name": "城乡居民养老保险待遇领取", "prefix": "A",
     "materials": [{"name": "近期一寸免冠照片", "originals": 2, "note": "白底"}],
     "legal_days": 20, "promised_days": 10, "kind": "promised"},
    {"code": "YB-001", "name": "异地就医备案", "prefix": "B", "basis": "《关于进一步做好异地就医直接结算工作的通知》",
     "materials": [{"name": "异地居住证明或转诊证明", "originals": 1, "copies": 1, "note": "转诊就医须提供"}],
     "legal_days": 5, "promised_days": 1, "kind": "promised", "fee": "不收费", "phone": "0663-8881002"},
]


@dataclass(frozen=True)
class StandInCard:
    """Stand-in for edge_agent.identity_card.ResidentCard (owned by the card reader's engineer)."""

    name: str
    sex: str
    birth_date: date
    id_hash: str = "9f" * 32
    id_masked: str = "445202********1234"

    def age_on(self, day: date) -> int:
        return day.year - self.birth_date.year - ((day.month, day.day) < (self.birth_date.month, self.birth_date.day))


def center_config(tmp_path: Path, center_port: int, county_port: int, http_port: int, player: list[str],
                  **queue) -> dict:
    now = time.time()
    return {
        "center": {"code": CENTER, "name": "示例镇便民服务中心", "hours": "周一至周五 08:30-17:30",
                   "phone": "0663-8881234", "complaint_phone": "0663-12345"},
        "services": [{"prefix": "A", "name": "社保业务"}, {"prefix": "B", "name": "医保业务"}],
        "items": ITEMS,
        "windows": [{"number": 1, "services": ["A", "B"], "staff_no": "1001", "staff_name": "张敏"},
                    {"number": 2, "services": ["B"], "staff_no": "1002", "staff_name": "李强"},
                    {"number": 3, "services": ["A"], "staff_no": "1003", "staff_name": "王芳"}],
        "queue": {"notice": NOTICE, "green_channel_age": 65, **queue},
        "voice": {"enabled": True, "player": player, "repeat": 1, "chime": False},
        "appointments": [{"code": "YY20260105001", "service": "B", "slot_start": now - 600, "slot_end": now + 1800,
                          "name": "刘德"}],
        "brokers": {"center": {"port": center_port}, "county": {"port": county_port, "backoff_max_s": 2}},
        "http": {"port": http_port},
        "storage": {"data_dir": str(tmp_path / "data")},
        "printer": {"kind": "file", "path": str(tmp_path / "data" / "printer.bin")},
        "admin": {"password_hash": ADMIN_HASH},
    }


class RunningAgent:
    def __init__(self, agent: EdgeAgent, loop: LoopThread, base: str, played: Path) -> None:
        self.agent, self.loop, self.base, self.played = agent, loop, base, played

    def post(self, path: str, **body) -> dict:
        response = httpx.post(f"{self.base}{path}", json=body)
        response.raise_for_status()
        return response.json()


@pytest.fixture
def make_agent(tmp_path, center_broker, county_broker):
    running: list = []
    loop = LoopThread().__enter__()

    def start(**queue) -> RunningAgent:
        script = tmp_path / "fake_player.py"
        script.write_text(FAKE_PLAYER)
        played = tmp_path / "played.log"
        port = free_port()
        config = parse_config(center_config(tmp_path, center_broker.port, county_broker.port, port,
                                            [sys.executable, str(script), str(played)], **queue))

        async def serve():
            from edge_agent.web.app import create_app

            agent = EdgeAgent(config)
            await agent.start()
            server = uvicorn.Server(uvicorn.Config(create_app(agent), host="127.0.0.1", port=port,
                                                   log_level="warning", lifespan="off"))
            server.install_signal_handlers = lambda: None
            task = asyncio.create_task(server.serve())
            return agent, server, task

        agent, server, task = loop.run(serve())
        running.append((agent, server, task))
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: httpx.get(f"{base}/api/health").status_code == 200, what="the agent serving")
        return RunningAgent(agent, loop, base, played)

    yield start

    async def stop(agent, server, task):
        server.should_exit = True
        await task
        await agent.stop()

    for agent, server, task in running:
        loop.run(stop(agent, server, task))
    loop.__exit__()


def test_kiosk_takes_tickets_and_the_guide_browses_searches_and_prints(make_agent, page, tmp_path):
    center = make_agent()
    signed_in(center.base, 3)  # an estimate counts staffed windows only
    page.goto(f"{center.base}/kiosk")
    page.locator('[data-estimate="A"]').filter(has_text="预计").wait_for()
    page.get_by_role("button", name=re.compile("社保业务")).click()
    page.get_by_role("button", name="确认").click()
    page.locator("#ticket-number").filter(has_text="A001").wait_for()
    assert "您前面还有 0 人在等待" in page.locator("#ticket").inner_text()
    page.get_by_role("button", name="好的").click()
    printer = tmp_path / "data" / "printer.bin"
    assert "【一次性告知】请携带以下材料：" not in decode(printer.read_bytes()).texts()  # no item, no materials

    # Browse: the service's 办事指南 lists its items; one opens its whole guide.
    page.locator('button.guide-open[data-guide="A"]').click()
    listed = page.locator("#guide-items button.guide-item")
    listed.filter(has_text="城乡居民养老保险待遇领取").wait_for()
    assert listed.count() == 2 and "承诺件 · 承诺时限：10个工作日" in listed.nth(1).inner_text()
    listed.filter(has_text="城乡居民养老保险参保登记").click()
    guide = page.locator("#guide-detail")
    guide.locator("#guide-name").filter(has_text="城乡居民养老保险参保登记").wait_for()
    text = guide.inner_text()
    for expected in ("即办件", "年满16周岁的城乡居民", "居民身份证 原件1份、复印件1份（本人）", "即时办结", "不收费",
                     "一楼社保窗口", "0663-8881001"):
        assert expected in text
    page.screenshot(path=tmp_path / "kiosk-guide.png")

    # 一次性告知书: printed on its own, everything told at once.
    page.get_by_role("button", name="打印一次性告知书").click()
    page.locator("#guide-status").filter(has_text="已打印").wait_for()
    notice = decode(printer.read_bytes()).texts()
    assert "一次性告知书" in notice and "城乡居民养老保险参保登记" in notice
    for expected in ("1. 居民身份证 原件1份、复印件1份（本人）", "2. 户口簿 原件1份、复印件1份", "办理时限：即时办结",
                     "承诺时限：即时办结", "收费标准：不收费", "办理地点：一楼社保窗口", "咨询电话：0663-8881001"):
        assert expected in notice

    # Search by name across services; the ticket taken from a guide carries that item's materials.
    page.get_by_role("button", name="返回").click()
    page.locator("#guide-search").fill("就医")
    page.get_by_role("button", name="搜索").click()
    listed.filter(has_text="异地就医备案").wait_for()
    assert listed.count() == 1
    listed.first.click()
    guide.locator("#guide-name").filter(has_text="异地就医备案").wait_for()
    page.locator("#guide-take").click()
    page.locator("#ticket-number").filter(has_text="B001").wait_for()
    ticket = decode(printer.read_bytes()).texts()
    at = ticket.index("B001")
    assert "异地就医备案（承诺件，承诺时限：1个工作日）" in ticket[at:]
    assert "1. 异地居住证明或转诊证明 原件1份、复印件1份（转诊就医须提供）" in ticket[at:]
    assert ticket.count("2. 户口簿 原件1份、复印件1份") == 1  # the notice's only

    page.locator("#ticket-close").click()
    page.locator("#guide-browse").click()
    page.locator("#guide-search").fill("没有这个事项")
    page.get_by_role("button", name="搜索").click()
    page.locator("#guide-empty").wait_for()


def test_the_kiosk_guide_shows_a_changed_item_without_a_reload(make_agent, page, tmp_path):
    """The county's configuration replaces agent.config while the kiosk page stays open: the next look at the
    guide, and the next 一次性告知书, carry the new materials."""
    center = make_agent()
    page.goto(f"{center.base}/kiosk")
    page.locator('button.guide-open[data-guide="B"]').click()
    page.locator("#guide-items button.guide-item").filter(has_text="异地就医备案").click()
    page.locator("#guide-fields").filter(has_text="异地居住证明或转诊证明").wait_for()
    page.get_by_role("button", name="返回").click()

    changed = dict(ITEMS[2], materials=[{"name": "参保人员异地就医备案表", "originals": 1, "copies": 0}])
    problems: list[str] = []
    items = parse_items([*ITEMS[:2], changed], {"A", "B"}, problems)
    assert problems == []
    center.agent.config = replace(center.agent.config, items=items)

    page.locator("#guide-items button.guide-item").filter(has_text="异地就医备案").click()
    page.locator("#guide-fields").filter(has_text="参保人员异地就医备案表 原件1份").wait_for()
    assert "异地居住证明" not in page.locator("#guide-fields").inner_text()
    page.get_by_role("button", name="打印一次性告知书").click()
    page.locator("#guide-status").filter(has_text="已打印").wait_for()
    assert "1. 参保人员异地就医备案表 原件1份" in decode((tmp_path / "data" / "printer.bin").read_bytes()).texts()


def test_hall_display_rotates_items_opening_hours_and_phones(make_agent, page, tmp_path):
    center = make_agent()
    page.goto(f"{center.base}/hall?rotate_s=0.5")
    panel = page.locator("#hall-info")
    panel.filter(has_text="城乡居民养老保险待遇领取（承诺件，承诺10个工作日）").filter(has_text="异地就医备案").wait_for()
    page.screenshot(path=tmp_path / "hall-items.png")
    panel.filter(has_text="周一至周五 08:30-17:30").wait_for()
    phones = page.locator('#hall-info[data-page="phones"]')
    for line in ("咨询电话：0663-8881234", "投诉电话：0663-12345", "社保业务咨询：0663-8881001",
                 "医保业务咨询：0663-8881002"):  # each page is read whole while it is shown
        phones.filter(has_text=line).wait_for()
    page.screenshot(path=tmp_path / "hall-info.png")


def test_kiosk_scanner_checks_in_an_appointment_and_refuses_an_unknown_code(make_agent, page):
    center = make_agent()
    page.goto(f"{center.base}/kiosk")
    page.locator('[data-waiting="B"]').filter(has_text="0").wait_for()
    page.keyboard.type("NOT-AN-APPOINTMENT")
    page.keyboard.press("Enter")
    page.locator("#notice-text").filter(has_text="未找到该预约").wait_for()
    page.get_by_role("button", name="知道了").click()
    page.keyboard.type("YY20260105001")  # what a keyboard-wedge scanner does
    page.keyboard.press("Enter")
    page.locator("#ticket-number").filter(has_text="B001").wait_for()
    assert page.locator("#ticket-note").inner_text() == "预约签到"
    page.get_by_role("button", name="好的").click()
    center.agent.code_scanned("YY20260105001")  # the serial scanner adapter's way in
    page.locator("#notice-text").filter(has_text="已签到，您的号码是 B001").wait_for()


def test_an_id_card_of_an_elderly_resident_gives_the_green_channel(make_agent, page):
    center = make_agent()
    page.goto(f"{center.base}/kiosk")
    page.locator('[data-waiting="A"]').filter(has_text="0").wait_for()
    center.post("/api/tickets", service="B")  # someone already waiting for B
    old = StandInCard("张三丰", "男", date(1950, 3, 1))
    center.agent.card_presented(old)
    banner = page.locator("#card-banner")
    banner.filter(has_text="已为您开通绿色通道").wait_for()
    assert "张**" in banner.inner_text() and "三丰" not in page.content()
    page.get_by_role("button", name=re.compile("医保业务")).click()
    page.get_by_role("button", name="确认").click()
    page.locator("#ticket-number").filter(has_text="B002").wait_for()
    assert page.locator("#ticket-note").inner_text() == "绿色通道"
    assert "您前面还有 0 人" in page.locator("#ticket-ahead").inner_text()  # nobody with priority ahead
    assert signed_in(center.base, 2).press("next").json()["ticket"] == "B002"
    page.get_by_role("button", name="好的").click()

    young = StandInCard("李四", "女", date(1990, 3, 1))
    center.agent.card_presented(young)
    banner.filter(has_text="李* 您好，请点选要办理的业务").wait_for()
    page.get_by_role("button", name=re.compile("社保业务")).click()
    page.get_by_role("button", name="确认").click()
    page.locator("#ticket-number").filter(has_text="A001").wait_for()
    assert page.locator("#ticket-note").inner_text() == ""
    assert banner.is_hidden()


def test_a_card_with_a_default_service_takes_the_ticket_at_once(make_agent, page):
    center = make_agent(card_default_service="A")
    page.goto(f"{center.base}/kiosk")
    page.locator('[data-waiting="A"]').filter(has_text="0").wait_for()
    center.agent.card_presented(StandInCard("王五", "男", date(1940, 1, 1)))
    page.locator("#ticket-number").filter(has_text="A001").wait_for()
    assert page.locator("#ticket-note").inner_text() == "绿色通道"


@needs_espeak
def test_staff_caller_hall_display_and_voice_follow_a_window_through_its_day(make_agent, page):
    center = make_agent(recall_limit=1)
    set_pins(center.base)
    hall = page.context.new_page()
    hall.goto(f"{center.base}/hall")
    hall.locator("footer.notice").filter(has_text=NOTICE).wait_for()
    row = hall.locator('tr[data-window="3"]')
    row.locator(".state").filter(has_text="暂未开放").wait_for()

    page.goto(f"{center.base}/staff/3")
    message = page.locator("#message")
    for service in "AAA":
        center.post("/api/tickets", service=service)
    page.locator("#waiting-count").filter(has_text="3").wait_for()
    page.get_by_role("button", name="下一位").click()
    message.filter(has_text="请先输入工号和密码登录").wait_for()
    page.locator("#staff-no").fill("1003")
    page.locator("#staff-pin").fill("999999")
    page.get_by_role("button", name="登录").click()
    message.filter(has_text="工号或密码错误").wait_for()
    page.locator("#staff-pin").fill(PINS["1003"])
    page.locator("#login:not(.busy)").wait_for()
    page.get_by_role("button", name="登录").click()
    page.locator("#staff-name").filter(has_text="王芳").wait_for()
    row.locator(".staff").filter(has_text="王芳").wait_for()
    assert hall.locator('tr[data-window="1"] .state').inner_text() == "暂未开放"

    page.get_by_role("button", name="下一位").click()
    page.locator("#current").filter(has_text="A001").wait_for()
    row.locator(".number").filter(has_text="A001").wait_for()
    hall.locator("#latest").filter(has_text="请A001号到3号窗口").wait_for()
    page.get_by_role("button", name="重呼").click()
    page.locator("#reason").filter(has_text="已重呼 1 次").wait_for()
    page.locator("#recall:not(.busy)").wait_for()  # a second click at once would be a double click
    page.get_by_role("button", name="重呼").click()
    message.filter(has_text="已重呼 1 次").wait_for()  # the limit
    page.get_by_role("button", name="过号").click()
    missed = page.locator('#missed li[data-ticket="A001"]')
    missed.wait_for()
    missed.get_by_role("button", name="重新排队").click()
    page.locator("#waiting li").first.filter(has_text="A001（过号回来）").wait_for()
    assert page.locator("#missed li").count() == 0
    page.locator("#next:not(.busy)").wait_for()
    page.get_by_role("button", name="下一位").click()
    page.locator("#reason").filter(has_text="过号回来的群众").wait_for()

    page.get_by_role("button", name="转移").click()
    page.locator("#transfer-service").select_option("B")
    page.get_by_role("button", name="确定转移").click()
    message.filter(has_text="A001 已转移").wait_for()
    hall.locator('#services li[data-service="B"]').filter(has_text="医保业务：1 人").wait_for()

    page.locator("#next:not(.busy)").wait_for()
    page.get_by_role("button", name="下一位").click()
    page.locator("#current").filter(has_text="A002").wait_for()
    page.get_by_role("button", name="办结").click()
    message.filter(has_text="A002 已办结").wait_for()
    page.get_by_role("button", name="暂停").click()
    row.locator(".state").filter(has_text="暂停服务").wait_for()
    page.locator("#pause:not(.busy)").wait_for()
    page.get_by_role("button", name="恢复").click()
    row.locator(".state").filter(has_text="等待叫号").wait_for()
    page.get_by_role("button", name="退出登录").click()
    row.locator(".state").filter(has_text="暂未开放").wait_for()
    page.locator("#login-form").wait_for()
    admin = httpx.Client(base_url=center.base)
    admin.post("/api/admin/login", json={"password": ADMIN_PASSWORD}).raise_for_status()
    assert [(a["window"], a["staff_no"]) for a in admin.get("/api/attendance").json()] == [(3, "1003")]
    assert center.agent.health()["attendance"]["unattended_windows"] == [1, 2, 3]

    # Every call and recall was spoken, one after another, in order.
    spoken = [("A001", 3)] * 3 + [("A002", 3)]
    wait_until(lambda: len(plays(center.played)) == 2 * len(spoken), timeout=60, what="the calls spoken")
    lines = plays(center.played)
    assert [line.split()[0] for line in lines] == ["start", "end"] * len(spoken)
    directory = center.agent.config.data_dir / "voice"
    settings = center.agent.config.voice
    assert [Path(line.split()[1]) for line in lines[::2]] == [directory / CALL_FILE] * len(spoken)
    pieces = PieceCache(directory, settings)  # each call as the player got it (its copy), in order
    assert [wave.open(f"{center.played}.{i}.wav").readframes(10**7) for i in range(1, len(spoken) + 1)] == [
        pieces.speech(number, window, settings.template)[1] for number, window in spoken]
