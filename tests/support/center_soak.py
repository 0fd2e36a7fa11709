"""A center's firmware through weeks of simulated time: presses, outages, broker restarts, power cuts.

Every window has a rating pad and a queue display, each the real firmware (DeviceRuntime with the real app,
the display's pixel screen and frame loop, the watchdog's progress monitor over a simulated watchdog) on a
real Mosquitto. The test side plays the edge agent: it opens a rating on a window's pad, acknowledges every
rating it receives (rating_ack), and calls tickets on the window's display.

Time is driven, never slept: the firmware's clock (firmware.lib.clock.ticks_ms, wrapping at 2**30 ms as on
the ESP32) starts an hour before its wrap and moves in steps of STEP_MS; after each step the scenario waits
until every running device's ticker has seen the new time and its watchdog has been fed at it, which it is
only while every watched loop (ticker, MQTT link, frame loop) beat after the step: a loop that died, or
stopped after a wrap, fails the run with its name. The asyncio loops run in real time, sped up (the ticker
every 20 ms, the watchdog's feeder every 20 ms), so a month takes about a minute.

Events, by the simulated day (a fixed pattern, so a failure repeats):
- ratings on every pad at every working step; a bad score mostly with its reason; the button 非常不满意
  pressed on the first day and then only after more than half the ticks period (6.2 days) of rest;
- a pad's network out for hours (its presses wait on flash); on long runs a display, then a pad holding a
  press, out for 7 days (more than half the ticks period: the supervisor must keep kicking the driver, and
  the edge must learn the held press's age);
- the center broker restarted (without persistence) right after a press;
- a pad's power cut right after a press (its process stops dead; a new runtime boots on its flash).

The run passes when every accepted press reached the edge with its score (and reason), every pad's outbox
is empty at the end, no press was refused, and no loop stalled. `make bench` runs 30 days
(bench/center_soak.py); tests/firmware/test_fw_soak.py a few days across a wrap.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho

from firmware.lib import clock, font
from firmware.lib import config as config_file
from firmware.lib import runtime as runtime_module
from firmware.lib.runtime import DeviceRuntime, rated_store
from firmware.queue_display.app import QueueDisplayApp
from firmware.rating_pad.app import BUTTON_SCORES, REASON_BUTTONS, RatingPadApp
from firmware.sim.hardware import SimNetwork, SimPanel, SimWatchdog, sim_screen
from protocol import identity, messages, topics

ROOT = Path(__file__).resolve().parents[2]
CENTER = "445202101001"
HOUR_MS = 3600 * 1000
DAY_MS = 24 * HOUR_MS
STEP_MS = 2 * HOUR_MS  # far below half the ticks period; the ticker sees every step
STEPS_PER_DAY = DAY_MS // STEP_MS
WORKING_STEPS = (4, 5, 6, 7)  # 08:00 to 16:00 of a simulated day, counted from its start
START_BEFORE_WRAP_MS = HOUR_MS  # the clock wraps in the first simulated hour, then every 12.4 days
KEEPALIVE_S = 60
TICK_MS = 20  # the runtime's ticker, real time: fast, as the clock is driven
FEED_MS = 20  # the watchdog feeder's round, real time (a board: 1 s)
WAIT_S = 60.0  # a hang guard for one wait, never a claim about speed
RAREST = 1  # 非常不满意: the button idle longest in a real center
LONG_RUN_DAYS = 20  # runs this long also take a display and a pad off the network for a week each
LONG_OUTAGE_DAYS = 7


class DrivenTicks:
    """The firmware's millisecond clock, moved only by the soak; wraps as the ESP32's does."""

    def __init__(self, start: int) -> None:
        self.now_ms = start % clock.TICKS_PERIOD
        self.wraps = 0
        self._saved: Any = None

    def install(self) -> None:
        self._saved = clock.ticks_ms
        clock.ticks_ms = self.ticks_ms  # type: ignore[assignment]

    def restore(self) -> None:
        if self._saved is not None:
            clock.ticks_ms = self._saved  # type: ignore[assignment]
            self._saved = None

    def ticks_ms(self) -> int:
        return self.now_ms

    def advance(self, ms: int) -> None:
        after = clock.ticks_add(self.now_ms, ms)
        if after < self.now_ms:
            self.wraps += 1
        self.now_ms = after


async def until(predicate: Any, what: str, timeout: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"soak: timed out waiting for {what}")
        await asyncio.sleep(0.005)


class Edge:
    """The edge agent's part, on the center broker: rating requests, display states, rating acknowledgements."""

    def __init__(self, port: int) -> None:
        self.lock = threading.Lock()
        self.received: dict[str, list[dict]] = {}  # rating_id -> every copy received (re-sends included)
        self.retained: dict[str, bytes] = {}  # what the edge keeps retained, published again after a restart
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="soak-edge")
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.05, 0.5)
        self.connected = threading.Event()
        self.client.connect("127.0.0.1", port, keepalive=KEEPALIVE_S)
        self.client.loop_start()
        if not self.connected.wait(WAIT_S):
            raise AssertionError("soak: the edge stand-in did not connect")

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any = None) -> None:
        client.subscribe(topics.subscription(topics.RATING_SUBMITTED, center=CENTER), qos=1)
        with self.lock:
            kept = list(self.retained.items())
        for topic, payload in kept:  # a broker restarted without persistence lost them, as the real edge knows
            client.publish(topic, payload, qos=1, retain=True)
        self.connected.set()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        name, params = topics.parse(message.topic)
        if name != topics.RATING_SUBMITTED:
            return
        rating = messages.decode("rating_submitted", message.payload)
        with self.lock:
            self.received.setdefault(rating["rating_id"], []).append(rating)
        ack = messages.make("rating_ack", rating_id=rating["rating_id"], reason=rating.get("reason"),
                            status=messages.RATING_STORED)
        client.publish(topics.build(topics.RATING_ACK, **params), messages.encode("rating_ack", ack), qos=1)

    def publish_retained(self, topic: str, payload: bytes) -> None:
        with self.lock:
            self.retained[topic] = payload
        self.client.publish(topic, payload, qos=1, retain=True)

    def nudge(self) -> None:
        """Every retained state again: each device reads a packet at the new time, as a board reads its
        PINGRESP every keepalive/2 of real time (the watchdog watches the link by what it reads)."""
        with self.lock:
            kept = list(self.retained.items())
        for topic, payload in kept:
            self.client.publish(topic, payload, qos=1, retain=True)

    def ratings(self) -> dict[str, list[dict]]:
        with self.lock:
            return {key: list(value) for key, value in self.received.items()}

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@dataclass
class Device:
    role: str
    window: int
    state_dir: Path
    port: int
    fnt: Any
    runtime: Any = None
    task: Any = None
    fed_at: int | None = None
    boots: int = 0
    out: bool = False  # its network is out
    out_steps: int = 0  # steps of the clock since it went out

    @property
    def mac(self) -> str:
        role_byte = 1 if self.role == messages.ROLE_RATING_PAD else 2
        return "02:50:%02x:00:00:%02x" % (role_byte, self.window)

    @property
    def device_id(self) -> str:
        return identity.device_id_from_mac(self.mac)

    def build(self) -> None:
        cfg = config_file.from_dict({"center": CENTER, "window": self.window, "role": self.role, "board": "sim",
                                     "broker": {"host": "127.0.0.1", "port": self.port},
                                     "keepalive_s": KEEPALIVE_S, "mac": self.mac})
        assert not cfg.errors, cfg.errors
        if self.role == messages.ROLE_RATING_PAD:
            app: Any = RatingPadApp(self.window, self.device_id, rated=rated_store(str(self.state_dir), log=None))
            panel: Any = SimPanel()
        else:
            app = QueueDisplayApp(self.window)
            board = json.loads((ROOT / "hardware" / "boards" / "sim.json").read_text(encoding="utf-8"))
            panel, _, _ = sim_screen(self.role, app, board["roles"][self.role], self.fnt)
        self.runtime = DeviceRuntime(cfg, app, str(self.state_dir), panel=panel, network=SimNetwork(self.mac),
                                     watchdog=SimWatchdog(), backoff_min_s=0.05, backoff_max_s=0.3, tick_ms=TICK_MS,
                                     log=None)
        decide = self.runtime.watchdog.feed_if_alive

        def recorded(now_ms: int) -> bool:
            fed = decide(now_ms)
            if fed:
                self.fed_at = now_ms
            return fed

        self.runtime.watchdog.feed_if_alive = recorded
        self.fed_at = None
        self.boots += 1

    def start(self) -> None:
        self.build()
        self.task = asyncio.create_task(self.runtime.run())

    async def power_cut(self) -> None:
        """The board loses power: nothing more is sent, nothing is said; its flash stays."""
        self.runtime.client.abort(stop=True)
        await asyncio.wait_for(self.task, WAIT_S)

    def network(self, up: bool, dead_port: int) -> None:
        self.out = not up
        self.out_steps = 0
        self.runtime.network.driver.up = up
        self.runtime.client.port = self.port if up else dead_port
        if not up:
            self.runtime.client.abort()


@dataclass
class Press:
    window: int
    request_id: str
    score: int
    reason: int | None
    day: int
    how: str  # "normal", "outage", "long_outage", "power_cut", "broker_restart"


@dataclass
class SoakFigures:
    days: int
    windows: int
    steps: int = 0
    wraps: int = 0
    presses: list[Press] = field(default_factory=list)
    copies_received: int = 0  # ratings received, re-sends included
    outages: int = 0
    long_outage_days: int = 0
    broker_restarts: int = 0
    power_cuts: int = 0
    rarest_idle_ms: int = 0  # the longest rest of the 非常不满意 button between two presses
    held_longest_ms: int = 0  # the age the edge was told of the press held through the pad's week-long outage
    stalls: list[str] = field(default_factory=list)
    real_s: float = 0.0

    def lines(self) -> list[str]:
        kinds: dict[str, int] = {}
        reasons = sum(1 for press in self.presses if press.reason is not None)
        for press in self.presses:
            kinds[press.how] = kinds.get(press.how, 0) + 1
        return [
            f"simulated: {self.days} days of {self.windows} windows (a pad and a display each), "
            f"{self.steps} steps of {STEP_MS // HOUR_MS} h, {self.wraps} wraps of the 2^30 ms ticks",
            f"presses accepted and stored at the edge: {len(self.presses)} "
            + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
            + f"; {self.copies_received} received by the edge, of which "
            f"{max(0, self.copies_received - len(self.presses) - reasons)} re-sends "
            "(a reason goes as a second message)",
            f"network outages {self.outages}"
            + (f" (a display's and a pad's of {self.long_outage_days} days each)" if self.long_outage_days else "")
            + f", broker restarts {self.broker_restarts}, power cuts mid-rating {self.power_cuts}",
            (f"a press held {self.held_longest_ms / DAY_MS:.1f} days on a pad's flash arrived saying so; "
             if self.held_longest_ms else "")
            + f"非常不满意 idle at most {self.rarest_idle_ms / DAY_MS:.1f} days between presses; "
            f"loops stalled: {len(self.stalls)}",
            f"real time: {self.real_s:.1f} s",
        ]


class CenterSoak:
    def __init__(self, broker: Any, state_root: Path, days: int, windows: int = 2) -> None:
        self.broker = broker
        self.state_root = Path(state_root)
        self.days = days
        self.windows = windows
        self.figures = SoakFigures(days, windows)
        self.ticks = DrivenTicks(clock.TICKS_PERIOD - START_BEFORE_WRAP_MS)
        self.fnt = font.from_bytes((ROOT / "firmware" / "lib" / "default_font.bin").read_bytes())
        self.devices: list[Device] = []
        self.edge: Edge | None = None
        self.call_seq = 0
        self.request_seq = 0
        self.rarest_at: int | None = None  # simulated ms of the last 非常不满意 press
        self.sim_ms = 0
        from tools.mosquitto import free_port

        self.dead_port = free_port()

    # ------------------------------------------------------------------ public

    async def run(self) -> SoakFigures:
        started = time.monotonic()
        saved_feed = runtime_module.WATCHDOG_FEED_MS
        runtime_module.WATCHDOG_FEED_MS = FEED_MS
        self.ticks.install()
        try:
            self.edge = Edge(self.broker.port)
            for window in range(1, self.windows + 1):
                for role in (messages.ROLE_RATING_PAD, messages.ROLE_QUEUE_DISPLAY):
                    state = self.state_root / f"{role}-{window}"
                    state.mkdir(parents=True, exist_ok=True)
                    self.devices.append(Device(role, window, state, self.broker.port, self.fnt))
            for window in range(1, self.windows + 1):  # what the edge shows before the day starts
                idle = messages.make("window_display", window=window, state=messages.DISPLAY_IDLE, ticket="",
                                     text="", call_seq=0)
                self.edge.publish_retained(topics.build(topics.WINDOW_DISPLAY, center=CENTER, window=window),
                                           messages.encode("window_display", idle))
                closed = messages.make("rating_request", request_id="soak-00000", window=window,
                                       state=messages.REQUEST_CLOSED, ticket="")
                self.edge.publish_retained(topics.build(topics.RATING_REQUEST, center=CENTER, window=window),
                                           messages.encode("rating_request", closed))
            for device in self.devices:
                device.start()
            await until(lambda: all(d.runtime.client.up for d in self.devices), "every device connected")
            for day in range(self.days):
                await self._day(day)
            await self._settle()
            self._check()
        finally:
            for device in self.devices:
                if device.task is not None and not device.task.done():
                    device.runtime.client.abort(stop=True)
                    try:
                        await asyncio.wait_for(device.task, WAIT_S)
                    except Exception:
                        pass
            if self.edge is not None:
                self.edge.close()
            self.ticks.restore()
            runtime_module.WATCHDOG_FEED_MS = saved_feed
            self.figures.real_s = time.monotonic() - started
        return self.figures

    # ------------------------------------------------------------------ a day

    def _pads(self) -> list[Device]:
        return [d for d in self.devices if d.role == messages.ROLE_RATING_PAD]

    def _display(self, window: int) -> Device:
        return [d for d in self.devices if d.role == messages.ROLE_QUEUE_DISPLAY and d.window == window][0]

    async def _day(self, day: int) -> None:
        pads = self._pads()
        if self.days >= LONG_RUN_DAYS:
            # A display, then a pad, whose access point is gone for a week: more than half the ticks period,
            # where a kept tick compared with "now" changes sign. The pad goes down holding a press.
            display = self._display(self.windows)
            if day == 1:
                display.network(False, self.dead_port)
                self.figures.outages += 1
                self.figures.long_outage_days = LONG_OUTAGE_DAYS
            if day == 1 + LONG_OUTAGE_DAYS:
                display.network(True, self.dead_port)
            if day == 10 + LONG_OUTAGE_DAYS:
                pads[-1].network(True, self.dead_port)
        for step in range(STEPS_PER_DAY):
            if step in WORKING_STEPS:
                for i, pad in enumerate(pads):
                    if pad.out:
                        continue  # no request reaches it: nobody can rate there
                    how = self._event(day, step, i)
                    if self.days >= LONG_RUN_DAYS and day == 10 and step == WORKING_STEPS[-1] and pad is pads[-1]:
                        how = "long_outage"
                    await self._rate(day, step, pad, how)
            await self._step()

    def _event(self, day: int, step: int, pad_index: int) -> str:
        """What happens around this press: a fixed pattern over the days, the pads and the working steps."""
        first, second, third = WORKING_STEPS[0], WORKING_STEPS[1], WORKING_STEPS[2]
        if step == first and pad_index == day % self.windows:
            return "power_cut"
        if step == second and pad_index == 0 and day % 2 == 1:
            return "outage"
        if step == third and pad_index == (day + 1) % self.windows and day % 3 == 2:
            return "broker_restart"
        return "normal"

    def _score(self, day: int, step: int, pad: Device) -> int:
        # 非常不满意 on the first day, then only once the button has rested more than half the ticks period.
        if pad.window == 1 and step == WORKING_STEPS[-1]:
            rested = self.rarest_at is None or self.sim_ms - self.rarest_at > clock.TICKS_PERIOD // 2 + DAY_MS // 4
            if rested:
                return RAREST
        return (5, 4, 3, 2, 5, 4)[(day + step + pad.window) % 6]

    async def _rate(self, day: int, step: int, pad: Device, how: str) -> None:
        assert self.edge is not None
        self.request_seq += 1
        self.call_seq += 1
        window = pad.window
        ticket = "A%03d" % (self.request_seq % 1000)
        request_id = "soak-%05d" % self.request_seq
        display = messages.make("window_display", window=window, state=messages.DISPLAY_SERVING, ticket=ticket,
                                text="请%s号到%d号窗口" % (ticket, window), call_seq=self.call_seq)
        self.edge.publish_retained(topics.build(topics.WINDOW_DISPLAY, center=CENTER, window=window),
                                   messages.encode("window_display", display))
        request = messages.make("rating_request", request_id=request_id, window=window,
                                state=messages.REQUEST_OPEN, ticket=ticket)
        self.edge.publish_retained(topics.build(topics.RATING_REQUEST, center=CENTER, window=window),
                                   messages.encode("rating_request", request))
        shown = self._display(window)
        if not shown.out:
            await until(lambda: shown.runtime.app.ticket == ticket, f"day {day}: {ticket} on window {window}'s display")
        app = pad.runtime.app
        await until(lambda: app.request is not None and app.request["request_id"] == request_id,
                    f"day {day}: the rating open on window {window}'s pad")
        if how in ("outage", "long_outage"):
            pad.network(False, self.dead_port)
            self.figures.outages += 1
            await until(lambda: not pad.runtime.client.up, "the pad's link down")
        score = self._score(day, step, pad)
        assert pad.runtime.press(score), f"day {day}: window {window}'s pad refused a press of {score}"
        reason = None
        if score in messages.BAD_SCORES and (day + window) % 3:  # mostly with its reason, at times without
            button = (day + step) % len(BUTTON_SCORES)
            assert pad.runtime.press(BUTTON_SCORES[button]), f"day {day}: window {window}'s pad refused the reason"
            reason = REASON_BUTTONS[button]
        if score == RAREST:
            if self.rarest_at is not None:
                self.figures.rarest_idle_ms = max(self.figures.rarest_idle_ms, self.sim_ms - self.rarest_at)
            self.rarest_at = self.sim_ms
        self.figures.presses.append(Press(window, request_id, score, reason, day, how))
        if how == "power_cut":
            await pad.power_cut()
            self.figures.power_cuts += 1
            pad.start()  # boots on its flash: the rating waits in the outbox
        elif how == "broker_restart":
            self.broker.restart()
            self.figures.broker_restarts += 1
        elif how == "outage":
            for _ in range(3):  # hours without a network; the rating waits on flash
                await self._step()
            pad.network(True, self.dead_port)
        if how != "long_outage":
            await until(lambda: pad.runtime.client.up, f"day {day}: window {window}'s pad connected")

    async def _step(self) -> None:
        """Move the clock one step; every running device must see it and be fed at it."""
        self.ticks.advance(STEP_MS)
        self.sim_ms += STEP_MS
        self.figures.steps += 1
        self.figures.wraps = self.ticks.wraps
        now = self.ticks.now_ms
        assert self.edge is not None
        self.edge.nudge()
        kicks = {id(d): d.runtime.network.driver.reconnects for d in self.devices}
        for device in self.devices:
            try:
                await until(lambda d=device: d.fed_at == now,  # type: ignore[misc]
                            f"{device.role} {device.window} fed after the step")
            except AssertionError:
                stalled = device.runtime.watchdog.monitor.stalled(now)
                self.figures.stalls.append(f"{device.role} {device.window} at {self.sim_ms} ms: {stalled}")
                raise AssertionError(f"soak: {device.role} of window {device.window} stopped making progress "
                                     f"after {self.sim_ms / DAY_MS:.2f} days: {stalled}") from None
            if device.out:
                device.out_steps += 1
            if device.out and device.out_steps >= 2:  # the first step after the loss only starts its grace
                # Hours passed without a network: the supervisor (firmware/lib/netlink.py) must have kicked
                # the driver again, however long the outage has lasted.
                try:
                    await until(lambda d=device: d.runtime.network.driver.reconnects > kicks[id(d)],  # type: ignore[misc]
                                f"{device.role} {device.window}'s network kicked")
                except AssertionError:
                    self.figures.stalls.append(f"{device.role} {device.window}: network not kicked")
                    raise AssertionError(f"soak: the network supervisor of {device.role} {device.window} stopped "
                                         f"kicking its driver after {self.sim_ms / DAY_MS:.2f} days") from None

    async def _settle(self) -> None:
        """Everything pressed reaches the edge: time-outs pass until every outbox is empty."""
        for device in self.devices:
            if device.out:
                device.network(True, self.dead_port)
        for _ in range(20):
            if all(len(d.runtime.outbox) == 0 for d in self._pads()):
                return
            self.ticks.advance(DeviceRuntime.RATING_ACK_TIMEOUT_S * 1000)
            await asyncio.sleep(0.2)
        await until(lambda: all(len(d.runtime.outbox) == 0 for d in self._pads()), "every outbox empty")

    def _check(self) -> None:
        assert self.edge is not None
        got = self.edge.ratings()
        self.figures.copies_received = sum(len(copies) for copies in got.values())
        by_request: dict[str, list[dict]] = {}
        for copies in got.values():
            for rating in copies:
                by_request.setdefault(rating["request_id"], []).append(rating)
        lost = []
        for press in self.figures.presses:
            ratings = by_request.get(press.request_id, [])
            scored = [r for r in ratings if r["score"] == press.score and r["window"] == press.window]
            if not scored or (press.reason is not None and not [r for r in scored if r.get("reason") == press.reason]):
                lost.append(press)
        assert not lost, f"soak: presses lost: {lost[:5]} ({len(lost)} in all)"
        for press in self.figures.presses:
            if press.how == "long_outage":  # held a week on flash: the edge must learn how old it is
                ages = [r.get("age_ms", 0) for r in by_request[press.request_id]]
                assert max(ages) >= (LONG_OUTAGE_DAYS - 1) * DAY_MS, f"soak: a week-old press came with ages {ages}"
                self.figures.held_longest_ms = max(ages)
        assert not self.figures.stalls

