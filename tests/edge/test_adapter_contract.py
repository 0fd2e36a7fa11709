"""The one adapter contract, run against every adapter, working and failing:

start and stop are idempotent and leave no task behind; health() is always a dict with a bool 'ok';
stop after a failed start is fine; and in the agent, no adapter's failure comes out of agent.start.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edge_agent.adapters.cameras import CameraConfig, WindowCameras
from edge_agent.adapters.document_camera import DocumentCamera, DocumentCameraConfig
from edge_agent.adapters.id_card import IdCardReader, IdCardReaderConfig
from edge_agent.adapters.printer import TicketPrinter
from edge_agent.adapters.scanner import BarcodeScanner, ScannerConfig
from edge_agent.agent import EdgeAgent
from edge_agent.config import PrinterConfig, load_config
from edge_agent.simulators.escpos_printer import NetworkPrinterSimulator
from edge_agent.simulators.id_card_reader import SamReaderSimulator
from tests.support.aio import run_async
from tests.support.camera_server import CameraServer, make_jpeg
from tests.support.centers import write_edge_config
from tools.mosquitto import free_port


class Doubles:
    """Simulated devices the working adapters talk to, stopped after the test."""

    def __init__(self) -> None:
        self.started: list = []

    def add(self, double):
        self.started.append(double)
        return double

    def stop(self) -> None:
        for double in self.started:
            double.stop()


@pytest.fixture
def doubles() -> Iterator[Doubles]:
    doubles = Doubles()
    yield doubles
    doubles.stop()


async def grab_stub(device: str):
    return make_jpeg(), None


# name -> (doubles, tmp_path) -> adapter
FACTORIES: dict[str, Callable] = {
    "id_card_reader/working": lambda d, tmp: IdCardReader(
        IdCardReaderConfig(d.add(SamReaderSimulator().start()).path), tmp, print),
    "id_card_reader/no_port": lambda d, tmp: IdCardReader(IdCardReaderConfig(str(tmp / "ttyUSB5")), tmp, print),
    "scanner/no_port": lambda d, tmp: BarcodeScanner(ScannerConfig(str(tmp / "ttyACM5")), print),
    "cameras/working": lambda d, tmp: WindowCameras([CameraConfig(
        1, d.add(CameraServer().start()).url(), "admin", "Cam-12345", interval_s=1)]),
    "cameras/refused": lambda d, tmp: WindowCameras([CameraConfig(
        1, f"http://127.0.0.1:{free_port()}/ISAPI/Streaming/channels/101/picture", interval_s=1)]),
    "document_camera/stub_frames": lambda d, tmp: DocumentCamera(DocumentCameraConfig("/dev/null"), grab=grab_stub),
    "document_camera/absent": lambda d, tmp: DocumentCamera(DocumentCameraConfig(str(tmp / "video3"))),
    "printer/network": lambda d, tmp: TicketPrinter(PrinterConfig(
        kind="network", host="127.0.0.1", port=d.add(NetworkPrinterSimulator().start()).port)),
    "printer/refused": lambda d, tmp: TicketPrinter(PrinterConfig(kind="network", host="127.0.0.1",
                                                                  port=free_port())),
    "printer/serial_missing": lambda d, tmp: TicketPrinter(PrinterConfig(kind="serial", path=str(tmp / "ttyS9"))),
    "printer/none": lambda d, tmp: TicketPrinter(PrinterConfig(kind="none")),
}


def assert_health(adapter) -> None:
    health = adapter.health()
    assert isinstance(health, dict) and isinstance(health.get("ok"), bool), health


def own_tasks() -> set[asyncio.Task]:
    return {task for task in asyncio.all_tasks() if task is not asyncio.current_task()}


@pytest.mark.parametrize("case", sorted(FACTORIES))
def test_the_adapter_contract(case, doubles, tmp_path):
    adapter = FACTORIES[case](doubles, tmp_path)
    assert adapter.name and isinstance(adapter.name, str)
    assert_health(adapter)  # before start: constructors do nothing, health still answers

    async def run() -> None:
        before = own_tasks()
        await adapter.stop()  # stop before start is fine
        await adapter.start()
        await adapter.start()  # idempotent: one set of tasks
        await asyncio.sleep(0.05)
        assert_health(adapter)
        await adapter.stop()
        await adapter.stop()
        assert_health(adapter)
        await asyncio.sleep(0)
        assert own_tasks() <= before, f"{case} left tasks running: {own_tasks() - before}"
        await adapter.start()  # and it starts again after a stop
        assert_health(adapter)
        await adapter.stop()

    run_async(run())


class ExplodingAdapter:
    name = "exploding"

    async def start(self) -> None:
        raise RuntimeError("wired wrong")

    async def stop(self) -> None:
        pass

    def health(self) -> dict:
        return {"ok": False, "last_error": "never started"}


def agent_config(tmp_path: Path):
    missing = tmp_path / "missing"
    extra = f"""
[peripherals.id_card]
port = "{missing}/ttyUSB0"

[peripherals.scanner]
port = "{missing}/ttyACM0"

[[peripherals.cameras]]
window = 1
url = "http://127.0.0.1:{free_port()}/ISAPI/Streaming/channels/101/picture"
username = "admin"
password = "x"

[peripherals.document_camera]
device = "{missing}/video0"
"""
    path = write_edge_config(tmp_path / "center", free_port(), free_port(), free_port(), printer="broken",
                             extra=extra)
    return load_config(path)


def test_failing_peripherals_never_stop_the_agent(tmp_path):
    config = agent_config(tmp_path)

    async def run() -> dict:
        agent = EdgeAgent(config)
        agent.adapters.append(ExplodingAdapter())
        names = [adapter.name for adapter in agent.adapters]
        for name in ("id_card_reader", "scanner", "cameras", "document_camera", "printer"):
            assert name in names
        await agent.start()  # nothing comes out of it
        await asyncio.sleep(0.1)
        health = agent.health()
        await agent.stop()
        return health

    health = run_async(run())
    for name in ("id_card_reader", "scanner", "cameras", "document_camera", "printer", "exploding"):
        assert health[name]["ok"] is False, (name, health[name])
    for name, part in health.items():
        assert isinstance(part.get("ok"), bool), name
    assert health["readiness"]["ok"] is False
    assert {"中心消息服务器不可用", "取号打印机故障", "身份证读卡器离线", "1号窗口排队显示屏离线"} <= set(
        health["readiness"]["reasons"])


@pytest.mark.parametrize("name", ["county_uplink", "center_broker", "voice"])
def test_the_agents_own_links_follow_the_contract(name, tmp_path):
    config = agent_config(tmp_path)

    async def run() -> None:
        agent = EdgeAgent(config)
        try:
            adapter = next(a for a in agent.adapters if a.name == name)
            assert_health(adapter)
            before = own_tasks()
            await adapter.stop()
            await adapter.start()
            await asyncio.sleep(0.05)
            assert_health(adapter)
            await adapter.stop()
            await adapter.stop()
            assert_health(adapter)
            await asyncio.sleep(0)
            assert own_tasks() <= before, f"{name} left tasks running: {own_tasks() - before}"
        finally:
            await agent.stop()

    run_async(run())


@pytest.mark.parametrize("name", ["county_uplink", "center_broker", "voice"])
def test_the_agents_own_links_start_idempotently(name, tmp_path):
    config = agent_config(tmp_path)

    async def run() -> None:
        agent = EdgeAgent(config)
        try:
            adapter = next(a for a in agent.adapters if a.name == name)
            before = own_tasks()
            await adapter.start()
            await adapter.start()
            await adapter.stop()
            await asyncio.sleep(0)
            assert own_tasks() <= before, f"{name} left tasks running: {own_tasks() - before}"
        finally:
            await agent.stop()

    run_async(run())
