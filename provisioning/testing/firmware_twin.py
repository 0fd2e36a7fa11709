"""What a provisioned board does after its reset, for tests: the real firmware on the network.

The virtual board (virtual_board.py) runs MicroPython's REPL in WebAssembly, which has no sockets, so it
cannot run the firmware's network side. FirmwareTwin is the board's network twin: on every power-on of
the virtual board it reads the /config.json that provisioning wrote into the board's flash and starts the
real firmware (DeviceRuntime with the role's real app, the same code the simulator runs) under CPython,
with the board's MAC and that config's broker, credentials and device key. What the twin proves is what
the technician needs: the config.json on the board makes a device that reaches its broker and answers.

    twin = FirmwareTwin(state_dir)
    with VirtualBoard(on_power_on=twin.boot) as board:
        ...  # provision; after its hard reset the device connects and sends its birth
    twin.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from pathlib import Path
from typing import Any

from firmware.lib import boards, font, hold
from firmware.lib import config as config_file
from firmware.lib.runtime import DeviceRuntime, rated_store
from firmware.queue_display.app import QueueDisplayApp
from firmware.rating_pad.app import RatingPadApp
from firmware.sim.hardware import SimButtons, SimNetwork, SimPanel, SimWatchdog, sim_screen
from protocol import messages

STOP_TIMEOUT_S = 5.0


class FirmwareTwin:
    """Runs the firmware of the virtual board's last boot; one device at a time, like the board."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.boots = 0
        self.config_errors: list[str] = []  # what the firmware's config reader complained about, per boot
        self.runtime: DeviceRuntime | None = None
        self.buttons: SimButtons | None = None
        self.panel: SimPanel | None = None
        self._font = font.from_bytes(Path(font.board_font_path()).read_bytes())
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="firmware-twin")
        self._thread.start()
        self._task: asyncio.Future | None = None

    def boot(self, files: dict[str, bytes], mac: str) -> None:
        """The board powered on: stop the firmware of the previous boot, start the one in `files`."""
        self.boots += 1
        future = asyncio.run_coroutine_threadsafe(self._boot(files, mac), self._loop)
        future.result(STOP_TIMEOUT_S * 2)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def press(self, score: int) -> bool:
        """A finger on a button of the running pad."""
        if self.buttons is None:
            raise TypeError("the running firmware has no buttons (not a rating pad, or nothing running)")

        async def press() -> bool:
            assert self.buttons is not None
            return self.buttons.press(score)

        return asyncio.run_coroutine_threadsafe(press(), self._loop).result(STOP_TIMEOUT_S)

    @property
    def screen_lines(self) -> list[str]:
        return list(self.panel.lines) if self.panel is not None else []

    def close(self) -> None:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(STOP_TIMEOUT_S * 2)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(STOP_TIMEOUT_S)

    async def _boot(self, files: dict[str, bytes], mac: str) -> None:
        await self._stop()
        if "/main.py" not in files or hold.HOLD_FILE in files:
            return  # no firmware, or provisioning holds it (firmware/lib/hold.py): the board sits at the REPL
        raw = files.get("/" + config_file.CONFIG_FILE)
        if raw is None:
            return  # nothing provisioned yet: the firmware would wait in its set-up screen
        device_dir = self.state_dir / f"boot-{self.boots}"
        device_dir.mkdir(parents=True, exist_ok=True)
        data = json.loads(raw.decode("utf-8"))
        data["mac"] = mac  # a real board reads its Wi-Fi MAC; the twin is told it
        config_path = device_dir / config_file.CONFIG_FILE
        config_path.write_text(json.dumps(data))
        cfg = config_file.load(str(config_path))
        self.config_errors = list(cfg.errors)
        self.runtime = self._runtime(cfg, device_dir)
        self._task = asyncio.get_running_loop().create_task(self.runtime.run())

    def _runtime(self, cfg: Any, device_dir: Path) -> DeviceRuntime:
        section = boards.role_section(boards.load(cfg.board), cfg.role)
        if cfg.role == messages.ROLE_QUEUE_DISPLAY:
            app: Any = QueueDisplayApp(cfg.window)
        else:
            from protocol import identity

            app = RatingPadApp(cfg.window, identity.device_id_from_mac(cfg.mac), rated=rated_store(str(device_dir)))
        screen, _, _ = sim_screen(cfg.role, app, section, self._font)
        self.panel = SimPanel(screen, device_dir / "screen.png")
        runtime = DeviceRuntime(cfg, app, str(device_dir), panel=self.panel, backoff_min_s=0.2, backoff_max_s=2,
                                network=SimNetwork(cfg.mac), watchdog=SimWatchdog(), reset=lambda: None)
        self.buttons = SimButtons(runtime.press) if cfg.role == messages.ROLE_RATING_PAD else None
        return runtime

    async def _stop(self) -> None:
        """Power off: the connection drops without a goodbye (the broker sends the will)."""
        task, runtime = self._task, self.runtime
        self._task = None
        if task is None or runtime is None:
            return
        with contextlib.suppress(Exception):
            runtime.client.abort(stop=True)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(task, STOP_TIMEOUT_S)
