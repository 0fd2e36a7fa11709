"""SimulatedCenter: one queue display and one rating pad per window.

Every simulated device runs the real firmware (DeviceRuntime with the real
app) with a SimPanel and SimButtons, its own MQTT connection and its own
state directory (config.json and the session file), exactly as a board.

Over-the-air updates run as on a board up to the reset: the real runtime fetches the bundle from the edge,
stages it in its state folder and resets. The twin's reset then does what a board's main.py does
(firmware/lib/otaboot.py chooses the set to boot) and boots the chosen bundle's files once in a fresh
interpreter (boot_check: the real MicroPython unix port when installed, else CPython): a bundle that
crashes at boot crashes there, is noted as the board's crash is, and the twin resets again into the
previous set. A bundle that boots is then run as the twin's own code (one process cannot hold two
versions of the firmware) but reported as what runs: its version in the birth and firmware_status, and
kept only once its trial passes, as on a board.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.util
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware.lib import boards, font, otaboot
from firmware.lib import config as config_file
from firmware.lib.runtime import OTA_DIR, DeviceRuntime, rated_store
from firmware.queue_display.app import QueueDisplayApp
from firmware.rating_pad.app import RatingPadApp
from firmware.sim.hardware import SimButtons, SimNetwork, SimPanel, SimWatchdog, sim_free_heap, sim_screen
from protocol import identity, messages

SIM_BOARD = "sim"
BOOT_CHECK_TIMEOUT_S = 60  # a hang guard; the import takes well under a second
# What the boot check imports from a slot, as main.py does at a board's boot (with a stand-in `machine`).
_BOOT_CHECK = """
import sys
slot, role = sys.argv[-2], sys.argv[-1]
sys.path.insert(0, slot)
try:
    import machine
except ImportError:
    sys.modules["machine"] = type(sys)("machine")
__import__("firmware.%s.main" % role)
__import__("firmware.%s.app" % role)
__import__("firmware.lib.runtime")
print("BOOTED")
"""
SCREEN_PNG = "screen.png"  # in each device's state folder: its panel as a resident sees it


def sim_mac(center: str, role: str, window: int) -> str:
    """A stable, locally administered MAC (first byte 0x02) for a simulated device."""
    digest = hashlib.sha256(f"{center}/{role}/{window}".encode()).digest()
    return ":".join(f"{b:02x}" for b in b"\x02" + digest[:5])


def sim_key(center: str, role: str, window: int) -> bytes:
    """The device key of a simulated device not given credentials (provisioning writes the fleet's on a board).

    Derived, so a test can sign desired configurations and commands for it.
    """
    return hashlib.sha256(f"sim-device-key/{center}/{role}/{window}".encode()).digest()


@dataclass(frozen=True)
class SimCredentials:
    """What the fleet's registration answers for a device, and provisioning writes into its config.json."""

    broker_username: str
    broker_password: str = field(repr=False)
    device_key: str = field(repr=False)  # hex

    @classmethod
    def from_answer(cls, answer: dict[str, Any]) -> SimCredentials:
        """From a registration answer (POST /api/devices/register) or a saved copy of one."""
        return cls(str(answer["broker_username"]), str(answer["broker_password"]), str(answer["device_key"]))


def load_credentials(path: Path) -> dict[str, SimCredentials]:
    """A credentials file: {device id: registration answer}; ValueError naming the file when it is not one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {device_id: SimCredentials.from_answer(answer) for device_id, answer in data.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"credentials file {path}: {exc}") from None


async def boot_check(slot: str, role: str) -> str | None:
    """Import a slot's application as a board's boot does, in a fresh interpreter: None, or why it crashed.

    The real MicroPython (unix port) when installed, with only the slot on its path (bundles are .mpy as
    provisioning compiles them); else CPython, which can check a source (.py) bundle only."""
    if importlib.util.find_spec("micropython_unix") is not None:
        args = [sys.executable, "-c", "import micropython_unix; micropython_unix.main()", "-c", _BOOT_CHECK,
                slot, role]
        env = {**os.environ, "MICROPYPATH": slot + ":.frozen"}
    else:
        if not Path(slot, "firmware", "lib", "runtime.py").exists():
            return None  # compiled for MicroPython, which is not installed here: boot it unchecked
        args = [sys.executable, "-I", "-c", _BOOT_CHECK, slot, role]
        env = dict(os.environ)
    process = await asyncio.create_subprocess_exec(*args, cwd=slot, env=env, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.STDOUT)
    try:
        output, _ = await asyncio.wait_for(process.communicate(), BOOT_CHECK_TIMEOUT_S)
    except asyncio.TimeoutError:
        process.kill()
        return "hung at boot"
    text = output.decode(errors="replace").strip()
    if process.returncode == 0 and text.endswith("BOOTED"):
        return None
    return text.splitlines()[-1] if text else "exited with %s" % process.returncode


def sim_devices(center: str, windows: list[int]) -> list[tuple[str, str, int, str]]:
    """(device id, role, window, MAC) of every device a SimulatedCenter of these windows runs, in its order."""
    found = []
    for window in windows:
        for role in (messages.ROLE_QUEUE_DISPLAY, messages.ROLE_RATING_PAD):
            mac = sim_mac(center, role, window)
            found.append((identity.device_id_from_mac(mac), role, window, mac))
    return found


class SimulatedDevice:
    """One simulated board running the real firmware runtime."""

    def __init__(self, runtime: DeviceRuntime, panel: SimPanel, state_dir: Path,
                 buttons: SimButtons | None = None) -> None:
        self.runtime = runtime
        self.panel = panel
        self.state_dir = state_dir
        self.buttons = buttons
        self.task: asyncio.Task | None = None
        self.reboots = 0  # reboot commands carried out

    @property
    def device_id(self) -> str:
        return self.runtime.device_id

    @property
    def role(self) -> str:
        return self.runtime.app.role

    @property
    def window(self) -> int:
        return self.runtime.window

    @property
    def mac(self) -> str:
        return self.runtime.config.mac

    @property
    def app(self) -> Any:
        return self.runtime.app

    @property
    def client(self):
        return self.runtime.client

    @property
    def lines(self) -> list[str]:
        """What the device's screen shows now."""
        return list(self.panel.lines)

    @property
    def online(self) -> bool:
        return self.runtime.client.up

    def press(self, score: int) -> bool:
        """Press the button for `score` (1..5): True if the pad sent a rating, False if refused."""
        if self.buttons is None:
            raise TypeError(f"{self.device_id} is a {self.role}: it has no rating buttons")
        return self.buttons.press(score)

    def reboot(self) -> None:
        """The board's reset (the reboot command, after its ack; an update staged or failed on trial): boot
        again, state kept."""
        self.reboots += 1
        previous = self.task

        async def again() -> None:
            if previous is not None:
                with contextlib.suppress(Exception):
                    await previous
            await self.boot()
            self.runtime.rebooted()
            await self.runtime.run()

        self.task = asyncio.get_running_loop().create_task(again(), name=self.device_id)

    async def boot(self) -> None:
        """What main.py does before the firmware runs: otaboot chooses the set, and a bundle that crashes at
        its boot is noted as crashed; the board resets into the choice otaboot makes next."""
        ota_dir = str(self.state_dir / OTA_DIR)
        for _ in range(3):  # a crash is noted once, and the next choice is the previous set
            slot = otaboot.choose(ota_dir)
            if slot is None:
                return
            crash = await boot_check(slot, self.role)
            if crash is None:
                return
            otaboot.note_failure(ota_dir, "crashed: " + crash)
            self.reboots += 1

    def abort(self, stop: bool = False) -> None:
        """Drop the connection without DISCONNECT (the broker publishes the will)."""
        self.runtime.client.abort(stop=stop)

    def state(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "device_id": self.device_id,
            "role": self.role,
            "window": self.window,
            "mac": self.mac,
            "online": self.online,
            "session": self.runtime.session,
            "reconnects": self.runtime.client.reconnects,
            "last_error": self.runtime.client.last_error,
            "lines": self.lines,
        }
        if self.role == messages.ROLE_RATING_PAD:
            out["open"] = self.app.is_open
            out["ticket"] = self.app.request["ticket"] if self.app.request else None
            leds = self.panel.screen.leds if self.panel.screen is not None else None
            out["leds"] = list(leds.states) if leds is not None else []  # left to right: 非常满意 .. 非常不满意
            out["asking_reason"] = self.app.asking_reason  # after a 差评 the buttons stand for its reasons
            out["buttons"] = self.app.button_labels()  # what each button means now, left to right
        return out

    def png(self) -> bytes | None:
        """The device's panel as a PNG, drawn for this moment."""
        return self.panel.png()


class SimulatedCenter:
    """All devices of one service center, each with its own MQTT connection."""

    def __init__(self, center: str, host: str, port: int, windows: list[int], state_dir: Path,
                 health_interval_s: float = 30, *, keepalive_s: int = 30, backoff_min_s: float = 0.5,
                 backoff_max_s: float = 30, username: str | None = None, password: str | None = None,
                 log: Callable[[str], None] | None = print,
                 credentials: dict[str, SimCredentials] | None = None,
                 trial_healthy_s: float | None = None) -> None:
        """`credentials`: per device id, what registration with the fleet issued (broker account and device key),
        written into that device's config.json as provisioning writes it on a board; a device without any
        uses `username`/`password` and its derived sim_key. `trial_healthy_s`: how long an updated firmware
        must stay healthy before it is kept (firmware.lib.ota.Updater.TRIAL_HEALTHY_S when None)."""
        self.center = identity.check_center_code(center)
        self.host = host
        self.port = port
        self.windows = [identity.check_window(w) for w in windows]
        self.state_dir = Path(state_dir)
        self.health_interval_s = health_interval_s
        self.keepalive_s = keepalive_s
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = backoff_max_s
        self.username = username
        self.password = password
        self.log = log
        self.credentials = dict(credentials or {})
        self.trial_healthy_s = trial_healthy_s
        self.devices: list[SimulatedDevice] = []
        self._board = boards.load(SIM_BOARD)
        self._font = font.from_bytes(Path(font.board_font_path()).read_bytes())  # shared: one asyncio thread
        self._displays: dict[int, SimulatedDevice] = {}
        self._pads: dict[int, SimulatedDevice] = {}
        for window in self.windows:
            self._displays[window] = self._make(messages.ROLE_QUEUE_DISPLAY, window)
            self._pads[window] = self._make(messages.ROLE_RATING_PAD, window)

    # ----------------------------------------------------------------- public

    async def start(self) -> None:
        """Start every device; each connects (and keeps retrying) on its own."""
        for device in self.devices:
            if device.task is None or device.task.done():
                device.task = asyncio.create_task(self._power_on(device), name=device.device_id)

    async def stop(self) -> None:
        """Graceful: every device says offline and disconnects cleanly."""
        await asyncio.gather(*(self._stop_device(d) for d in self.devices))

    async def wait_online(self, timeout: float = 10) -> None:
        """Wait until every device is connected and has sent its birth."""
        async def all_up() -> None:
            while not all(d.online for d in self.devices):
                await asyncio.sleep(0.05)

        await asyncio.wait_for(all_up(), timeout)

    def display(self, window: int) -> SimulatedDevice:
        return self._displays[window]

    def pad(self, window: int) -> SimulatedDevice:
        return self._pads[window]

    def device(self, device_id: str) -> SimulatedDevice:
        for device in self.devices:
            if device.device_id == device_id:
                return device
        raise KeyError(device_id)

    def abort(self, device_id: str, stop: bool = False) -> None:
        """Kill that device's connection abruptly so the broker publishes its will.

        The device reconnects by itself (like a Wi-Fi blip) unless `stop`
        (like a power cut).
        """
        self.device(device_id).abort(stop=stop)

    def state(self) -> dict[str, Any]:
        return {
            "center": self.center,
            "broker": f"{self.host}:{self.port}",
            "windows": [
                {"window": w, "display": self._displays[w].state(), "pad": self._pads[w].state()}
                for w in self.windows
            ],
        }

    # ---------------------------------------------------------------- helpers

    def _make(self, role: str, window: int) -> SimulatedDevice:
        mac = sim_mac(self.center, role, window)
        device_id = identity.device_id_from_mac(mac)
        device_dir = self.state_dir / device_id
        device_dir.mkdir(parents=True, exist_ok=True)
        config_path = device_dir / config_file.CONFIG_FILE
        issued = self.credentials.get(device_id)
        username, password = (issued.broker_username, issued.broker_password) if issued else (self.username,
                                                                                                self.password)
        config_path.write_text(json.dumps({
            "center": self.center,
            "window": window,
            "role": role,
            "board": SIM_BOARD,
            "broker": {"host": self.host, "port": self.port, "username": username, "password": password},
            "health_interval_s": self.health_interval_s,
            "keepalive_s": self.keepalive_s,
            "mac": mac,
            "device_key": issued.device_key if issued else sim_key(self.center, role, window).hex(),
        }, indent=2) + "\n")
        cfg = config_file.load(str(config_path))
        if role == messages.ROLE_QUEUE_DISPLAY:
            app: Any = QueueDisplayApp(window)
        else:
            app = RatingPadApp(window, device_id, rated=rated_store(str(device_dir), log=self.log))
        # The board's own panel, drawn in pixels with the real renderer; screen.png follows every change.
        screen, _, _ = sim_screen(role, app, boards.role_section(self._board, role), self._font)
        panel = SimPanel(screen, device_dir / SCREEN_PNG)
        device: SimulatedDevice
        runtime = DeviceRuntime(cfg, app, str(device_dir), panel=panel, backoff_min_s=self.backoff_min_s,
                                backoff_max_s=self.backoff_max_s, log=self.log, network=SimNetwork(mac),
                                watchdog=SimWatchdog(), reset=lambda: device.reboot(), free_heap=sim_free_heap(role),
                                trial_healthy_s=self.trial_healthy_s)
        buttons = SimButtons(runtime.press) if role == messages.ROLE_RATING_PAD else None
        device = SimulatedDevice(runtime, panel, device_dir, buttons)
        self.devices.append(device)
        return device

    async def _power_on(self, device: SimulatedDevice) -> None:
        await device.boot()
        device.runtime.rebooted()
        await device.runtime.run()

    async def _stop_device(self, device: SimulatedDevice) -> None:
        task = device.task
        if task is None:
            return
        if not task.done():
            try:
                await asyncio.wait_for(device.runtime.stop(), 5)
            except (asyncio.TimeoutError, OSError):
                pass
            try:
                await asyncio.wait_for(asyncio.shield(task), 5)
            except Exception:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        device.task = None
