"""The edge agent: the store, the queue and every adapter, wired together.

An adapter that fails to start is logged and reported in health; the agent
keeps serving the center with the others (a dead printer must not stop the
kiosk, a dead county link must not stop calling).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from zoneinfo import ZoneInfo

from edge_agent.adapters.base import cancel_and_wait, log_task_error, start_kept_running
from edge_agent.adapters.broker_accounts import BrokerAccounts
from edge_agent.adapters.center_link import CenterLink
from edge_agent.adapters.printer import NoticeSlip, TicketPrinter, TicketSlip
from edge_agent.adapters.uplink import Uplink
from edge_agent.awaiting_ack import AwaitingAck
from edge_agent.center_config import CenterConfiguration, in_flight, keep_in_flight, keep_in_flight_after_restart
from edge_agent.config import CenterConfig
from edge_agent.firmware_cache import FirmwareCache
from edge_agent.guide import GuideItem, notice_lines
from edge_agent.host_health import HostHealth
from edge_agent.peripherals import build_peripherals
from edge_agent.queue import service as queue_kinds
from edge_agent.queue.kiosk import KioskDesk, PresentedCard
from edge_agent.queue.rules import GREEN
from edge_agent.queue.service import OPEN as WINDOW_OPEN
from edge_agent.queue.service import IssuedTicket, QueueChange, QueueError, QueueService
from edge_agent.readiness import center_readiness, voice_fault, voice_problem
from edge_agent.retained import RetainedCopies
from edge_agent.sign_in import SignIn
from edge_agent.storage import StorageHealth
from edge_agent.store import EdgeStore
from edge_agent.voice import VoiceAnnouncer
from protocol import messages, topics

log = logging.getLogger(__name__)
SILENT_REQUEST_SWEEP_S = 5.0


class EdgeAgent:
    def __init__(self, config: CenterConfig) -> None:
        # The county's center configuration (profile, items, windows, roster) replaces the TOML's sections once
        # one has arrived; the one kept from the last run is in force from the start, county link or not.
        self.center_configuration = CenterConfiguration(config, self.apply_center_config, self._report_center_config)
        self.store = EdgeStore(config.data_dir / "edge.sqlite3")
        saved = self.center_configuration.load_saved()
        if saved is not None:  # and what the queue of before the restart still needs: a ticket in flight
            config = keep_in_flight_after_restart(saved, config, *in_flight(self.store, saved))
        self.config = config
        self.config_generation = 0  # counts the swaps of self.config: open pages redraw after one
        self.queue = QueueService(self.store, config)
        self.printer = TicketPrinter(config.printer)
        self.retained = RetainedCopies(config.data_dir / "edge.sqlite3", self.store.writes)
        self.awaiting = AwaitingAck(config.data_dir / "edge.sqlite3", self.store.writes)
        # The data disk: free space and failed writes, in health, readiness and the county's edge_health.
        self.storage = StorageHealth(config.data_dir, self.store.writes, self.store.probe_write, config.min_free_bytes)
        # The Pi itself (version, disk, CPU temperature, clock sync, database size): edge_health's `host`.
        self.host = HostHealth(config.data_dir, config.data_dir / "edge.sqlite3", in_background=True)
        self.uplink = Uplink(config, self.store, self.retained, self.awaiting)
        self.center_link = CenterLink(config, self.queue, self.store, self.uplink, self.retained)
        self.uplink.downlink = self.center_link.relay_down
        # Firmware bundles from the fleet: received once for the center, served to its boards in chunks.
        self.firmware = FirmwareCache(config.data_dir / "firmware", config.code, config.edge_key)
        self.uplink.firmware_bundle = self.firmware.receive
        self.center_link.firmware = self.firmware
        self.uplink.health_summary = self.health_summary
        self.uplink.center_config = self.center_configuration.receive
        self.voice = VoiceAnnouncer(config.voice, config.data_dir / "voice")
        self.kiosk = KioskDesk(config.queue.green_channel_age)
        self.sign_in = SignIn(self.store, config, self.queue)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sweeper: asyncio.Task | None = None
        self.broker_accounts = BrokerAccounts(config)
        if config.center_broker_files is not None:
            self.uplink.broker_accounts = self.broker_accounts.receive
            self.center_link.registry = self.broker_accounts  # only registered devices, as registered
        # First: it must know the installed version before the county's retained copy arrives.
        self.adapters = [self.broker_accounts, self.uplink, self.center_link, self.printer, self.voice]
        # Card reader, scanner, cameras, document camera: those the config has ([peripherals.*]).
        self.adapters += build_peripherals(config.peripherals, config.data_dir,
                                           on_card=self.card_presented, on_code=self.code_scanned)
        self.change_listeners: list = []  # e.g. the hall page's live updates
        self.started_at = time.time()
        self.queue.listeners.append(self._on_change)

    def apply_center_config(self, config: CenterConfig) -> None:
        """A new center configuration from the county, live: every part reads its config from here on. What the
        queue still needs of the old one stays (keep_in_flight); windows removed and idle close (考勤 ends)."""
        old = self.config
        config = keep_in_flight(config, old, *in_flight(self.store, old))
        kept = {window.number for window in config.windows}
        for number, state in self.queue.window_states().items():
            if number not in kept and state.staff_no and any(w.number == number for w in old.windows):
                self.queue.logout(number)  # while the window still exists: its 考勤 ends
        self._swap_config(config)
        with self.store.transaction() as db:
            for window in config.windows:
                self.store.ensure_window(db, window.number)
        self._set_county_pins(old, config)
        for window in config.windows:
            self.center_link.publish_window(window.number)
        for listener in list(self.change_listeners):
            listener(QueueChange("config", None))

    def _swap_config(self, config: CenterConfig) -> None:
        """Every part that reads the center's configuration reads `config` from now on."""
        for part in (self, self.queue, self.sign_in, self.center_link, self.uplink):
            part.config = config
        self.config_generation += 1

    def _set_county_pins(self, old: CenterConfig, new: CenterConfig) -> None:
        """PIN hashes the county changed become the staff's PINs (a PIN set on /admin since stays until then)."""
        before = {member.staff_no: member.pin_hash for member in old.staff}
        changed = [m for m in new.staff if m.pin_hash and before.get(m.staff_no) != m.pin_hash]
        if not changed:
            return
        with self.store.transaction() as db:
            for member in changed:
                db.execute("INSERT INTO staff_pins (staff_no, pin_hash, set_at) VALUES (?, ?, ?) ON CONFLICT "
                           "(staff_no) DO UPDATE SET pin_hash = excluded.pin_hash, set_at = excluded.set_at",
                           (member.staff_no, member.pin_hash, time.time()))

    def _report_center_config(self, payload: dict) -> None:
        """center_config_reported to the county, retained, through the outbox: an offline center reports later."""
        spec = topics.topic(topics.CENTER_CONFIG_REPORTED)
        self.uplink.relay(topics.build(topics.CENTER_CONFIG_REPORTED, center=self.config.code),
                          messages.encode(spec.payload, payload), spec.qos, spec.retained, keep=True)

    def _on_change(self, change: QueueChange) -> None:
        self.uplink.wake()
        if change.window is not None:
            if change.kind in (queue_kinds.CALLED, queue_kinds.RECALLED):
                self.voice.announce(change.ticket.number, change.window)
            if change.kind in (queue_kinds.RECALLED, queue_kinds.SKIPPED, queue_kinds.TRANSFERRED,
                               queue_kinds.WINDOW):
                self.center_link.publish_window(change.window)  # the center link itself republishes on calls
        for listener in list(self.change_listeners):
            listener(change)

    def snapshot(self) -> dict:
        """What the pages show: the queue, the kiosk's prompt or last scan, voice on or off and whether it is heard,
        a resident at the kiosk asking for help."""
        return {**self.queue.snapshot(), "kiosk": self.kiosk.state(), "config_generation": self.config_generation,
                "voice": {"enabled": self.voice.enabled, "problem": voice_problem(self.voice.health())},
                "help": self.kiosk.help_state()}

    def ask_for_help(self) -> None:
        """请工作人员帮助 at the kiosk: every staff caller and the hall show it until someone goes."""
        self.kiosk.ask_for_help()
        log.info("a resident at the kiosk asks for help")
        self._kiosk_changed()

    def help_given(self, staff_name: str) -> None:
        self.kiosk.help_given(staff_name)
        log.info("%s goes to help at the kiosk", staff_name)
        self._kiosk_changed()

    def _kiosk_changed(self) -> None:
        for listener in list(self.change_listeners):
            listener(QueueChange("kiosk", None))

    def _on_loop(self, coroutine_function, *args) -> None:
        """Run an agent coroutine from any thread (card reader and scanner adapters may use their own)."""
        if self._loop is None:
            log.error("agent not started: %s dropped", coroutine_function.__name__)
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._loop.create_task(coroutine_function(*args)).add_done_callback(log_task_error)
        else:
            future = asyncio.run_coroutine_threadsafe(coroutine_function(*args), self._loop)
            future.add_done_callback(lambda done: done.cancelled() or done.exception() is None or log.error(
                "%s failed", coroutine_function.__name__, exc_info=done.exception()))

    def card_presented(self, card: PresentedCard) -> None:
        """An ID card at the kiosk's reader: green channel by age; the kiosk asks for a service (or a default)."""
        self._on_loop(self.present_card, card)

    def code_scanned(self, text: str) -> None:
        """A code from the kiosk's scanner: an appointment check-in."""
        self._on_loop(self.scan_code, text)

    async def present_card(self, card: PresentedCard) -> dict:
        today = datetime.now(ZoneInfo(self.config.timezone)).date()
        prompt = self.kiosk.present_card(card, today)
        log.info("ID card at the kiosk (green channel: %s)", "yes" if prompt.green else "no")
        result = {"kind": "card", "green": prompt.green}
        if self.config.queue.card_default_service:
            result = await self._ticket_for_kiosk(self.config.queue.card_default_service, with_card=True)
        self._kiosk_changed()
        return result

    async def scan_code(self, text: str) -> dict:
        code = text.strip()
        try:
            issued = self.queue.check_in(code)
        except QueueError as exc:
            log.info("kiosk scan refused: %s", exc)
            result = {"kind": "error", "message": str(exc)}
        else:
            result = {"kind": "ticket", **await self._print(issued, note="预约签到")}
        self.kiosk.show(result)
        self._kiosk_changed()
        return result

    async def _ticket_for_kiosk(self, service: str, with_card: bool = False) -> dict:
        try:
            result = {"kind": "ticket", **await self.take_ticket(service, with_card)}
        except QueueError as exc:
            result = {"kind": "error", "message": str(exc)}
        self.kiosk.show(result)
        return result

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        for adapter in self.adapters:
            try:
                await adapter.start()
            except Exception:
                log.exception("adapter %s failed to start; the agent runs without it", adapter.name)
        self._sweeper = start_kept_running("rating requests", self._close_silent_requests)

    async def _close_silent_requests(self) -> None:
        """Requests no pad answered within its time-out close as pad_offline, so coverage counts them."""
        while True:
            await asyncio.sleep(SILENT_REQUEST_SWEEP_S)
            self.queue.close_silent_requests()

    async def stop(self) -> None:
        await cancel_and_wait(self._sweeper)
        for adapter in reversed(self.adapters):
            try:
                await adapter.stop()
            except Exception:
                log.exception("adapter %s failed to stop cleanly", adapter.name)
        self.retained.close()
        self.awaiting.close()
        self.store.close()

    def health(self) -> dict:
        unattended = self.queue.unattended_windows()
        health = {**{adapter.name: adapter.health() for adapter in self.adapters},
                  self.storage.name: self.storage.health(),
                  # Informational: a window nobody logged in to is not a fault of the agent.
                  "attendance": {"ok": True, "unattended_windows": unattended},
                  "firmware": self.firmware.health()}
        ready, reasons = center_readiness(health, self.store.devices(), [w.number for w in self.config.windows])
        health["readiness"] = {"ok": ready, "reasons": reasons}  # can this center serve residents right now
        return health

    def health_summary(self) -> dict:
        """The edge_health fields for the county: can this center serve residents right now, and why not."""
        health = self.health()
        ready, reasons = center_readiness(health, self.store.devices(), [w.number for w in self.config.windows])
        components = {}
        for name, part in health.items():
            if not isinstance(part, dict) or "ok" not in part or part.get("state") == "not configured":
                continue
            if "broker" in part:  # the two MQTT links
                state = "connected" if part["ok"] else "unreachable"
                if part.get("forwarding") == "failing":  # connected, but what it forwards cannot be recorded
                    state = "forwarding_failed"
            else:
                state = str(part.get("state") or ("ok" if part["ok"] else "error"))
            component = {"ok": bool(part["ok"]), "state": state}
            if name == "printer" and part.get("paper"):
                component["state"] = {"out": "paper_out", "near_end": "paper_near_end"}.get(part["paper"],
                                                                                           component["state"])
            if name == self.voice.name and not part["ok"]:  # why residents cannot hear: said in Chinese at the county
                component["state"] = voice_fault(part) or component["state"]
            if name == self.storage.name:  # what county IT needs to judge the disk from afar
                component.update({key: part[key] for key in ("free_bytes", "write_failures", "last_write_failure_at")})
            if name == self.broker_accounts.name:  # the fleet moves its counter past a version installed here
                component.update({key: part[key] for key in ("version", "stale", "refused")})
            if name == "firmware":  # which bundles the center's boards can fetch here (a rollout waits for it)
                component.update({key: part[key] for key in ("bundles", "refused")})
                if part["last_error"]:
                    component["problem"] = part["last_error"]
            components[name] = component
        # One component per window camera, named as docs/protocol.md says (camera-<window>).
        for camera in health.get("cameras", {}).get("cameras", []):
            components[f"camera-{camera['window']}"] = {"ok": camera["online"],
                                                        "state": "online" if camera["online"] else "offline",
                                                        "last_image": camera["last_good_at"]}
        components.pop("cameras", None)
        # Only the windows' states: this runs every second, the full page snapshot is far heavier.
        states = self.queue.window_states()
        last_out = self.queue.last_sign_outs()
        windows = {}
        for window in self.config.windows:
            state = states.get(window.number)
            windows[str(window.number)] = {"state": state.state if state else WINDOW_OPEN,
                                           "staff_no": (state.staff_no if state else None) or ""}
            told = self.center_link.displays_told.get(window.number)
            if told is not None:  # what its display was told (docs/protocol.md, edge_health): the county mirrors it
                windows[str(window.number)]["display"] = {key: told[key] for key in ("state", "ticket", "text")}
            if not windows[str(window.number)]["staff_no"]:  # 空岗 since then (0: never staffed here)
                windows[str(window.number)]["unstaffed_since"] = last_out.get(window.number, 0.0)
        # The center's staff directory (window staff and stand-ins): events carry staff numbers only, the county
        # names them with this.
        staff = {member.staff_no: member.name for member in self.config.staff}
        return {"ready": ready, "reasons": reasons, "components": components, "windows": windows, "staff": staff,
                "outbox": health["county_uplink"]["outbox"], "uptime_s": round(time.time() - self.started_at),
                "host": self.host.figures(), "ts": time.time()}

    async def take_ticket(self, service: str, with_card: bool = False, item: str = "",
                          kiosk_request: str = "") -> dict:
        """A resident takes a ticket: issued first, then printed; a printer failure never loses it.

        `with_card`: the ID card swiped at the kiosk just now goes with it (green channel by age).
        `item`: the code of the item (事项) the resident chose in the guide: the ticket carries its materials.
        `kiosk_request` names the tap: the same tap sent again (a double tap, a retry) answers with the
        ticket it got, printed once.
        """
        earlier = self.queue.kiosk_ticket(kiosk_request) if kiosk_request else None
        if earlier is not None:
            return self._ticket_answer(earlier, note="绿色通道" if earlier.ticket.priority == GREEN else "",
                                       printed=None)
        chosen = self._chosen_item(item, service) if item else None
        card = self.kiosk.take_card() if with_card else None
        if with_card and card is None:
            raise QueueError("身份证信息已过期，请重新刷卡")
        if card is not None:
            self._kiosk_changed()
        issued = self.queue.issue_ticket(service, GREEN if card and card.green else "", kiosk_request)
        return await self._print(issued, note="绿色通道" if card and card.green else "", item=chosen)

    def _chosen_item(self, code: str, service: str) -> GuideItem:
        try:
            chosen = self.config.item(code)
        except KeyError:
            raise QueueError("该事项已不在本中心办理，请咨询工作人员") from None
        if chosen.prefix != service:
            raise QueueError(f"事项“{chosen.name}”不属于该业务")
        return chosen

    async def print_notice(self, code: str) -> bool:
        """Print the 一次性告知书 of an item (materials, time limits, fees, where, whom to ask); KeyError if the
        center does not handle it."""
        chosen = self.config.item(code)
        return await self.printer.print_notice(NoticeSlip(
            self.config.name, chosen.name, tuple(notice_lines(chosen, self.config.name)), time.time(),
            self.config.timezone, label=f"一次性告知书 {chosen.code}"))

    async def _print(self, issued: IssuedTicket, note: str = "", item: GuideItem | None = None) -> dict:
        service = self.config.service(issued.ticket.service)
        slip = TicketSlip(self.config.name, issued.service_name, issued.ticket.number, issued.people_ahead,
                          issued.ticket.issued_at, f"{self.config.code}/{issued.ticket.business_day}/"
                          f"{issued.ticket.number}", self.config.timezone, wait_text=issued.wait_text, note=note,
                          guide=f"{item.name}（{item.kind_label}，承诺时限：{item.promised_text}）" if item else "",
                          materials=tuple(m.text() for m in item.materials) if item else (),
                          windows=tuple(w.number for w in self.config.windows if service.prefix in w.services))
        printed = await self.printer.print_ticket(slip)
        return self._ticket_answer(issued, note, printed)

    @staticmethod
    def _ticket_answer(issued: IssuedTicket, note: str, printed: bool | None) -> dict:
        """What the kiosk shows; `printed` is None for a repeated tap (its ticket was printed for the first)."""
        return {"number": issued.ticket.number, "service": issued.ticket.service, "service_name": issued.service_name,
                "people_ahead": issued.people_ahead, "wait_text": issued.wait_text, "note": note,
                "green": issued.ticket.priority == GREEN, "printed": printed, "repeated": issued.repeated}
