"""DeviceRuntime: wires config, the MQTT link, presence, health and one app.

The app (QueueDisplayApp, RatingPadApp) is pure: it gets decoded payloads,
link changes, ticks and button presses, and returns payloads to publish.
The runtime does all the I/O: it publishes what the app returns, draws the
app's lines on the panel when they change, sends the birth after every
connect and a health heartbeat every health_interval_s, applies the signed
desired configuration and runs signed commands, keeps the network link up
and feeds the hardware watchdog while its loops make progress.

What it keeps in the state folder (flash on a board):

    session              the presence session counter
    desired.json         the configuration version in force and its content
    commands.json        ids of the commands already run (each runs once)
    rated.json           rating requests already answered (rating pad)
    outbox/<n>.msg       ratings the edge has not yet acknowledged (rating pad)
    ota/                 over-the-air updates: boot.json, the staging slots (firmware/lib/ota.py, otaboot.py)

Malformed messages are printed and dropped; nothing a broker sends can
stop the device.
"""

import asyncio
import gc
import json

from firmware.lib import clock, flashfs, ota, presence
from firmware.lib.awaiting_ack import AwaitingAck
from firmware.lib.commands import ButtonCheck, CommandGate, Overlay
from firmware.lib.commands import ack as command_ack
from firmware.lib.desired import DesiredConfig
from firmware.lib.mqtt import MQTTClient
from firmware.lib.netlink import LinkSupervisor
from firmware.lib.outbox import FlashOutbox
from firmware.lib.recent import RecentIds
from firmware.lib.watchdog import ProgressMonitor, WatchdogFeeder
from protocol import identity, messages, topics
from protocol.errors import ProtocolError

FW_VERSION = "0.1.0"
TICK_MS = 200
RAM_QUEUE_MAX = 32  # control messages (reports, acks, birth repair); ratings wait on flash
WATCHDOG_FEED_MS = 1000
TICK_STALL_MS = 10000  # the ticker (display, timeouts, network) silent this long: reset
SCREEN_STALL_MS = 10000  # a pixel screen's frame loop (every 40 ms) silent this long: reset
REBOOT_ACK_TIMEOUT_S = 5
COMMAND_IDS_KEPT = 32
RATED_IDS_KEPT = 32

DESIRED_FILE = "desired.json"
OTA_DIR = "ota"  # main.py boots what firmware/lib/otaboot.py chooses in <state dir>/ota
COMMANDS_FILE = "commands.json"
RATED_FILE = "rated.json"
OUTBOX_DIR = "outbox"
# What the edge answers each emitted message with once it has stored it (end to end, not the broker's PUBACK):
# the message stays in the outbox until then (firmware/lib/awaiting_ack.py).
ACKED_BY = {topics.RATING_SUBMITTED: topics.RATING_ACK}


def _free_heap():
    try:
        return gc.mem_free()
    except AttributeError:
        return None


def rated_store(state_dir, log=print):
    """The flash-backed memory of answered rating requests, for RatingPadApp(rated=...)."""
    return RecentIds(flashfs.join(state_dir, RATED_FILE), RATED_IDS_KEPT, log=log)


class DeviceRuntime:
    RATING_ACK_TIMEOUT_S = 20
    """How long a rating sent (PUBACKed) waits for the edge's acknowledgement before it goes again: the edge
    answers in milliseconds; a re-send it did not need costs it one duplicate, dropped (and acknowledged)."""

    OTA_RETRY_S = 30
    """How long a download waits after its edge did not answer (or had no such bundle yet) before it goes on."""

    def __init__(self, config, app, state_dir="", panel=None, fw=FW_VERSION, backoff_min_s=0.5,
                 backoff_max_s=30, tick_ms=TICK_MS, rssi=None, log=print, network=None, watchdog=None,
                 reset=None, free_heap=None, trial_healthy_s=None):
        """network: a link driver (firmware/lib/netlink.py) kept up by the runtime, or None.
        watchdog: anything with feed() (drivers/wdt.py HardwareWatchdog, sim SimWatchdog), or None.
        reset: a callable that restarts the board (machine.reset), for the reboot command.
        free_heap: a callable giving the free heap in bytes for heartbeats; default gc.mem_free (None where the
        runtime has none, e.g. CPython: the simulator passes its board's).
        trial_healthy_s: how long a firmware on trial must stay healthy to be kept (default
        ota.Updater.TRIAL_HEALTHY_S; the simulator's demo shortens it).
        """
        self.config = config
        self.app = app
        self.panel = panel
        self.log = log
        self.rssi = rssi  # optional callable: Wi-Fi signal in dBm
        self.free_heap = free_heap or _free_heap
        if rssi is None and network is not None:
            self.rssi = network.rssi
        self.tick_ms = tick_ms
        self.reset = reset
        self.state_dir = state_dir
        self.device_id = identity.device_id_from_mac(config.mac)
        self.center = config.center
        self.window = config.window
        self.health_interval_s = config.health_interval_s
        # What runs: the factory set (fw) or a bundle installed over the air (its manifest's version).
        self._factory_fw = fw
        self._trial_healthy_s = trial_healthy_s
        self.updater = self._read_firmware_state()
        self._ota_task = None
        self.chunk_wanted = None  # (manifest sha256, path, offset) of the firmware_fetch awaiting its chunk
        self.chunk = None
        self.chunk_event = asyncio.Event()
        self.presence = presence.Presence(
            config.center, self.device_id, app.role, config.window, config.board, self.updater.running_version(),
            identity.normalise_mac(config.mac), state_dir,
        )
        self.client = MQTTClient(
            self.device_id, config.broker_host, config.broker_port,
            username=config.username, password=config.password, keepalive=config.keepalive_s,
            will=self.presence.will_for_next_connect, on_message=self._on_message,
            on_connect=self._on_connect, backoff_min_s=backoff_min_s, backoff_max_s=backoff_max_s,
            log=log,
        )
        self.health_topic = topics.build(topics.DEVICE_HEALTH, center=self.center, device=self.device_id)
        self._health_qos = topics.topic(topics.DEVICE_HEALTH).qos
        self.desired = DesiredConfig(app.role, self.device_id, config.device_key,
                                     flashfs.join(state_dir, DESIRED_FILE), log=self._log)
        self.commands = CommandGate(self.device_id, config.device_key,
                                    RecentIds(flashfs.join(state_dir, COMMANDS_FILE), COMMAND_IDS_KEPT, log=self._log),
                                    self.presence.boot)
        self.overlay = Overlay()
        self.button_check = None  # ButtonCheck while a rating pad's self-test runs
        # Ratings wait on flash until the edge acknowledges them; a device that emits nothing has no outbox.
        self.outbox = None
        self.awaiting = None  # AwaitingAck of the message sent and not yet acknowledged
        self._ack_name = ACKED_BY.get(app.EMITS)
        if app.EMITS is not None:
            self.outbox = FlashOutbox(flashfs.join(state_dir, OUTBOX_DIR), log=self._log)
            if self._ack_name is not None:
                self.awaiting = AwaitingAck(self.RATING_ACK_TIMEOUT_S * 1000)
        self.refused_by_edge = 0  # messages the edge acknowledged as refused for good
        self.network = LinkSupervisor(network, log=self._log) if network is not None else None
        self.watchdog = None
        if watchdog is not None:
            link_stall_ms = int((2 * config.keepalive_s + backoff_max_s + self.client.connect_timeout_s) * 2000)
            hearts = {"tick": max(TICK_STALL_MS, 20 * tick_ms), "link": link_stall_ms}
            if self._screen_loop():
                hearts["screen"] = SCREEN_STALL_MS
            monitor = ProgressMonitor(hearts)
            self.watchdog = WatchdogFeeder(monitor, watchdog, log=self._log)
        self.uptime_ms = 0
        self.dropped = 0  # malformed or unknown messages
        self.received = 0
        self.last_error = config.error  # reported in health until something newer happens
        self._errors_seen = {}  # source -> the last error of it already taken into last_error
        self._queue_ram = []  # [topic, payload bytes, qos, retain]: control messages, in order
        self._outbox_event = asyncio.Event()
        self._link_up = False
        self._last_tick = clock.ticks_ms()  # uptime counts from here
        self._made_at = {}  # outbox key -> uptime_ms() when it was stored: its age_ms at every send
        self._shown = None
        self._tasks = []
        self._reboot_task = None
        self._apply(self.desired.config)
        self._note_errors()
        self.refresh()

    @property
    def session(self):
        return self.presence.session

    # ----------------------------------------------------------------- public

    async def run(self):
        """Run until stop(): the link, the heartbeat, the ticker, the sender and the watchdog."""
        await self.client.subscribe(self.presence.topic, self.presence.qos)
        for name in self.app.SUBSCRIBES + (topics.DEVICE_CONFIG_DESIRED, topics.DEVICE_COMMAND,
                                           topics.FIRMWARE_DESIRED, topics.FIRMWARE_CHUNK):
            await self.client.subscribe(self._topic(name), topics.topic(name).qos)
        self.publish_firmware_status()  # retained: what runs, and why
        if self._ack_name is not None:
            await self.client.subscribe(self._topic(self._ack_name), topics.topic(self._ack_name).qos)
        if self.outbox is not None and len(self.outbox):
            self._log("%d message(s) from before the reboot wait in the outbox" % len(self.outbox))
            self._outbox_event.set()
        self._tasks = [
            asyncio.create_task(self._sender()),
            asyncio.create_task(self._heartbeat()),
            asyncio.create_task(self._ticker()),
        ]
        if self._screen_loop():
            self._tasks.append(asyncio.create_task(self.panel.run()))  # scrolling, blinking, recovery
        if self.watchdog is not None:
            self.watchdog.monitor.start(clock.ticks_ms())
            self._tasks.append(asyncio.create_task(self._feeder()))
        try:
            await self.client.run()
        finally:
            for task in self._tasks:
                task.cancel()
            self._tasks = []

    async def stop(self):
        """Graceful shutdown: say offline (retained), then a clean DISCONNECT."""
        self.presence.birth_sent = False  # our own offline coming back is not a stale will
        if self.client.up:
            try:
                await asyncio.wait_for(
                    self.client.publish(self.presence.topic, self.presence.will(), self.presence.qos,
                                        self.presence.retain), 3)
            except Exception as exc:
                self._log("offline presence not sent: %s" % exc)
        await self.client.disconnect()

    def press(self, score):
        """A rating button. True if the app accepted it and its payload is stored for sending."""
        check = self.button_check
        if check is not None:
            check.press(score)
            if check.passed:
                self._end_button_check(None)
            self.refresh()
            return False
        if self.outbox is not None and self.outbox.full:
            # Refused rather than accepted and lost: the outbox keeps what it already has.
            self._error("outbox full, press refused")
            return False
        payload = self.app.press(score, clock.ticks_ms())
        self.refresh()
        if payload is None:
            return False
        return self.submit(payload)

    def submit(self, payload):
        """Store a payload of the app's EMITS topic on flash; sent in order, deleted once the edge acknowledged
        it (rating_ack; for a topic the edge does not acknowledge, after its PUBACK)."""
        name = self.app.EMITS
        if self.outbox is None:
            raise ValueError("a %s emits nothing" % self.app.role)
        spec = topics.topic(name)
        data = messages.encode(spec.payload, payload)
        key = self.outbox.add(self._topic(name), data, spec.qos, spec.retained)
        if key is None:
            self._error("outbox full, %s not stored" % name)
            return False
        self._made_at[key] = self.uptime()
        self._outbox_event.set()
        return True

    def refresh(self, now_ms=None):
        """Draw the app's lines (or the identify / test-pattern overlay) if they changed.

        Apps count their changes, so the 5-per-second ticker allocates
        nothing when nothing happened.
        """
        if now_ms is None:
            now_ms = clock.ticks_ms()
        frame = self.overlay.frame(now_ms)
        check = self.button_check
        changes = (self.app.changes, frame, -1 if check is None else check.presses)
        if changes == self._shown:
            return
        self._shown = changes
        if self.panel is None:
            return
        if check is not None:
            self.panel.show_lines(check.lines())
        elif frame >= 0:
            self.panel.show_lines(self.overlay.lines(now_ms, self.device_id))
        else:
            self.app.render(self.panel)

    @property
    def lines(self):
        return self.app.lines()

    # ---------------------------------------------------------------- the link

    async def _on_connect(self):
        await self.client.publish(self.presence.topic, self.presence.birth(), self.presence.qos,
                                  self.presence.retain)
        self.presence.birth_sent = True
        self.updater.birth_sent(self.uptime())
        if self.awaiting is not None and self.awaiting.link_up():
            self._outbox_event.set()  # its acknowledgement may have come while the link was down: lost

    def _on_message(self, topic, payload, retained):
        self.received += 1
        try:
            name, params = topics.parse(topic)
        except ProtocolError as exc:
            self._drop(topic, exc)
            return
        if not payload:
            return  # a retained message being cleared
        if name in (topics.DEVICE_CONFIG_DESIRED, topics.DEVICE_COMMAND, topics.FIRMWARE_DESIRED):
            if params.get("device") != self.device_id or params.get("center") != self.center:
                return
            data = self._json(topic, payload)
            if data is None:
                return  # not JSON: nothing to say which version or command it was
            if name == topics.DEVICE_CONFIG_DESIRED:
                self._on_desired(data)
            elif name == topics.FIRMWARE_DESIRED:
                self._on_firmware_desired(data)
            else:
                self._on_command(data)
            return
        try:
            data = messages.decode(topics.topic(name).payload, payload)
        except ProtocolError as exc:
            self._drop(topic, exc)
            return
        if name == topics.DEVICE_PRESENCE:
            if params.get("device") == self.device_id and self.presence.is_stale_will(data):
                self._log("stale will for session %s seen, publishing birth again" % data.get("session"))
                self.presence.repairs += 1
                self._queue(self.presence.topic, self.presence.birth(), self.presence.qos,
                            self.presence.retain, first=True)
            return
        if name == self._ack_name:
            if params.get("device") == self.device_id and params.get("center") == self.center:
                self._on_ack(data)
            return
        if name == topics.FIRMWARE_CHUNK:
            wanted = self.chunk_wanted
            if wanted is not None and (data["manifest_sha256"], data["path"], data["offset"]) == wanted:
                self.chunk = data
                self.chunk_event.set()
            return
        if params.get("center") != self.center or params.get("window", self.window) != self.window:
            return
        try:
            out = self.app.on_message(name, data, clock.ticks_ms(), retained)
        except Exception as exc:  # a bug in the app must not kill the read loop
            self._drop(topic, exc)
            return
        if out is not None:
            self.submit(out)
        self.refresh()

    def _on_ack(self, data):
        """The edge's rating_ack: the awaited rating is stored (or refused for good) and leaves the outbox."""
        awaiting, outbox = self.awaiting, self.outbox
        if awaiting is None or outbox is None:
            return
        key = awaiting.acknowledged(data["rating_id"], data.get("reason"))
        if key is None:
            return  # the answer to a copy already answered (a re-send), or to nothing awaited
        outbox.remove(key)
        self._made_at.pop(key, None)
        if data["status"] == messages.RATING_REFUSED:
            self.refused_by_edge += 1
            self._log("rating %s refused by the edge: %s" % (data["rating_id"], data.get("error")))
        self._outbox_event.set()  # the next one may go

    def _json(self, topic, payload):
        """Parsed JSON, or None (counted as dropped) when it is not JSON."""
        try:
            return json.loads(bytes(payload).decode("utf-8"))
        except (ValueError, UnicodeError) as exc:
            self._drop(topic, exc)
            return None

    # ------------------------------------------------------- config, commands

    def _on_desired(self, data):
        report, config = self.desired.consider(data)
        if config is not None:
            self._apply(config)
            self._log("configuration version %d applied" % self.desired.version)
        elif report["status"] == messages.CONFIG_REJECTED:
            self._error("config version %s rejected: %s" % (report["version"], report.get("error")))
        self._publish_control(topics.DEVICE_CONFIG_REPORTED, report)

    # ------------------------------------------------------------ firmware (OTA)

    def _on_firmware_desired(self, data):
        task = self._ota_task
        running = task is not None and not task.done()
        target = self.updater.target
        if running and target is not None and data.get("manifest_sha256") == target["manifest_sha256"] \
                and data.get("issued_at") == target["issued_at"]:
            return  # the retained order again (a reconnect): its download goes on
        start = self.updater.consider(data)
        if task is not None and running and (start or self.updater.target is None):
            task.cancel()  # replaced by a newer order
        if start:
            from firmware.lib import ota_download  # only now: a board not updating keeps it off its heap

            self._ota_task = asyncio.create_task(ota_download.run_update(self))
        self.publish_firmware_status()

    def _read_firmware_state(self):
        updater = ota.Updater(flashfs.join(self.state_dir, OTA_DIR), self.device_id, self.config.device_key,
                              self._factory_fw, log=self._log)
        if self._trial_healthy_s is not None:
            updater.TRIAL_HEALTHY_S = self._trial_healthy_s
        return updater

    def rebooted(self):
        """A reset that keeps this process (the simulator's board): read what the flash says runs now, as a
        fresh boot does, before run() starts again. otaboot.choose() has made its decision already."""
        self.updater = self._read_firmware_state()
        self.updater.booted_at = self.uptime()
        self.presence.fw = self.updater.running_version()
        self._reboot_task = None
        self._ota_task = None

    def publish_firmware_status(self):
        self._publish_control(topics.FIRMWARE_STATUS, self.updater.status())

    def note_error(self, text):
        self._error(text)

    def topic_of(self, name):
        return self._topic(name)

    async def reset_into(self, what):
        """Reset the board (otaboot picks what boots): a staged set, or the previous one. At once: stopping the
        runtime first would end the board's event loop (asyncio.run returns with run()) before the reset, and
        main.py's guard would reset only after its pause; the broker publishes the will instead of a goodbye."""
        if self.reset is None:
            self._log("this device cannot reboot itself: %s boots at its next start" % what)
            return
        self._log("rebooting into %s" % what)
        self.reset()  # a board does not come back from this
        # The simulator's reset does return: its reboot waits for this run() to end.
        try:
            await asyncio.wait_for(self.stop(), REBOOT_ACK_TIMEOUT_S)
        except Exception as exc:
            self._log("clean stop after the reset failed: %s" % exc)

    def _judge_trial(self, now):
        stalled = self.watchdog.monitor.stalled(now) if self.watchdog is not None else []
        verdict = self.updater.judge_trial(self.uptime(), stalled)
        if verdict is None:
            return
        if verdict == "confirm":
            try:
                deferred = self.updater.confirm()
            except OSError as exc:
                self._error("firmware confirmation not written: %s" % exc)
                return
            self.publish_firmware_status()
            if deferred is not None:
                self._on_firmware_desired(deferred)
            return
        self.updater.fail_trial(verdict)
        self._error("firmware on trial failed: %s" % verdict)
        if self._reboot_task is None:
            self._reboot_task = asyncio.create_task(self.reset_into("the previous firmware"))

    def _apply(self, config):
        """Put a (merged, validated) configuration in force: the app, the panel, the heartbeat."""
        if hasattr(self.app, "apply_config"):
            self.app.apply_config(config)
        if "brightness" in config:
            try:
                self._set_brightness(config["brightness"])
            except Exception as exc:  # the rest of the configuration still applies
                self._error("brightness not applied: %s" % exc)
        if "health_interval_s" in config:
            self.health_interval_s = config["health_interval_s"]
        self.refresh()

    def _set_brightness(self, level):
        setter = getattr(self.panel, "set_brightness", None)
        if setter is None:
            raise AttributeError("this panel has no brightness control")
        setter(level)

    def _on_command(self, data):
        command, answer = self.commands.check(data, self.uptime())
        if command is None:
            if answer is None:
                self._log("dropped a command without a command_id")
                self.dropped += 1
            else:
                self._error("command %s rejected: %s" % (answer["command_id"], answer.get("error")))
                self._publish_control(topics.DEVICE_COMMAND_ACK, answer)
            return
        self._log("running command %s (%s)" % (command.command_id, command.name))
        if command.name == messages.COMMAND_REBOOT:
            if self.reset is None:
                self._ack(command.command_id, messages.COMMAND_FAILED, "this device cannot reboot itself")
            else:
                # Not one of self._tasks: stop() ends run(), which cancels those, and this must outlive it.
                self._reboot_task = asyncio.create_task(self._reboot(command.command_id))
            return
        if command.name == messages.COMMAND_SELF_TEST and self.app.BUTTONS:
            # Acknowledged when every button was pressed or the time ran out (_tick), not now.
            if self.button_check is not None:
                self._end_button_check("replaced by self-test %s" % command.command_id)
            self.button_check = ButtonCheck(command.command_id, self.app.BUTTONS, clock.ticks_ms(),
                                            command.args["seconds"])
            self.refresh()
            return
        try:
            if command.name == messages.COMMAND_BRIGHTNESS:
                self._set_brightness(command.args["level"])
            elif command.name == messages.COMMAND_SELF_TEST:
                self.overlay.start(messages.COMMAND_TEST_PATTERN, clock.ticks_ms(), command.args["seconds"])
                self.refresh()
            else:
                self.overlay.start(command.name, clock.ticks_ms(), command.args["seconds"])
                self.refresh()
        except Exception as exc:
            self._ack(command.command_id, messages.COMMAND_FAILED, "%s: %s" % (type(exc).__name__, exc))
            return
        self._ack(command.command_id, messages.COMMAND_DONE)

    def _end_button_check(self, failure):
        check, self.button_check = self.button_check, None
        if check is None:
            return
        if failure is None:
            self._ack(check.command_id, messages.COMMAND_DONE)
        else:
            self._ack(check.command_id, messages.COMMAND_FAILED, failure)

    async def _reboot(self, command_id):
        # The ack goes out (PUBACKed) before the board resets: the fleet learns it ran.
        data = messages.encode("command_ack", command_ack(command_id, messages.COMMAND_DONE))
        spec = topics.topic(topics.DEVICE_COMMAND_ACK)
        try:
            await asyncio.wait_for(self.client.publish(self._topic(topics.DEVICE_COMMAND_ACK), data, spec.qos,
                                                       spec.retained), REBOOT_ACK_TIMEOUT_S)
        except Exception as exc:
            self._log("reboot ack not confirmed: %s" % exc)
        try:
            await asyncio.wait_for(self.stop(), REBOOT_ACK_TIMEOUT_S)
        except Exception as exc:
            self._log("clean stop before reboot failed: %s" % exc)
        self._log("rebooting")
        self.reset()

    def _ack(self, command_id, status, error=None):
        if error is not None:
            self._error("command %s %s: %s" % (command_id, status, error))
        self._publish_control(topics.DEVICE_COMMAND_ACK, command_ack(command_id, status, error))

    def _publish_control(self, name, payload):
        spec = topics.topic(name)
        self._queue(self._topic(name), messages.encode(spec.payload, payload), spec.qos, spec.retained)

    # ------------------------------------------------------------------ tasks

    async def _sender(self):
        while True:
            if self._queue_ram:
                item = self._queue_ram[0]  # stays first until sent
                try:
                    await self.client.publish(item[0], item[1], item[2], item[3])
                except Exception as exc:  # only when the client is closed
                    self._log("sender stopped: %s" % exc)
                    return
                if self._queue_ram and self._queue_ram[0] is item:
                    self._queue_ram.pop(0)
                continue
            outbox = self.outbox
            item = outbox.peek() if outbox is not None else None
            awaiting = self.awaiting
            if outbox is None or item is None or (awaiting is not None and not awaiting.should_send(item[0])):
                # Nothing to send, or the oldest is sent and waits for its acknowledgement (or its time-out).
                self._outbox_event.clear()
                await self._outbox_event.wait()
                continue
            key, topic, data, qos, retain = item
            named = None
            if awaiting is not None:
                named = self._named(data)
                if named is not None:
                    awaiting.sending(key, named[0], named[1], clock.ticks_ms())
            try:
                await self.client.publish(topic, self._aged(key, data), qos, retain)
            except Exception as exc:
                self._log("sender stopped: %s" % exc)
                return
            if awaiting is None or named is None:
                outbox.remove(key)  # PUBACKed, and nobody acknowledges it further: only now may it go
                self._made_at.pop(key, None)
            else:
                awaiting.delivered(key, clock.ticks_ms())  # kept until the edge's acknowledgement (_on_ack)

    async def _heartbeat(self):
        while True:
            await asyncio.sleep(self.health_interval_s)
            if not self.client.up:
                continue  # no stale heartbeats queued while offline
            try:
                await self.client.publish(self.health_topic, self._health(), self._health_qos, False)
            except Exception as exc:
                self._log("health not sent: %s" % exc)

    async def _ticker(self):
        period_s = self.tick_ms / 1000
        while True:
            self._tick()
            await asyncio.sleep(period_s)

    async def _feeder(self):
        feeder = self.watchdog
        if feeder is None:
            return
        while True:
            now = clock.ticks_ms()
            feeder.monitor.beat("link", self.client.progress_ms)
            if self._screen_loop():
                feeder.monitor.beat("screen", self.panel.progress_ms)
            feeder.feed_if_alive(now)
            await asyncio.sleep(WATCHDOG_FEED_MS / 1000)

    def uptime(self):
        """Milliseconds since the runtime was made. Never wraps: the ticker adds up short ticks_diff steps."""
        return self.uptime_ms + clock.ticks_diff(clock.ticks_ms(), self._last_tick)

    def _named(self, data):
        """(rating_id, reason) of a stored rating: what its acknowledgement will name; None if unreadable."""
        try:
            payload = messages.decode(topics.topic(self.app.EMITS).payload, data)
        except ProtocolError as exc:
            self._error("outbox message not valid, sent without waiting for its acknowledgement: %s" % exc)
            return None
        return payload["rating_id"], payload.get("reason")

    def _aged(self, key, data):
        """The outbox payload to publish: bytes, or for one stored since boot a callable adding its age_ms.

        Measured at every send, so a rating re-sent after a reconnect says how old it is then; one from
        before a reboot has no age this boot can know, and goes as stored.
        """
        made_at = self._made_at.get(key)
        if made_at is None:
            return data
        kind = topics.topic(self.app.EMITS).payload

        def with_age():
            payload = messages.decode(kind, data)
            payload["age_ms"] = min(max(0, self.uptime() - made_at), messages.INT_MAX)
            return messages.encode(kind, payload)

        return with_age

    def _tick(self):
        now = clock.ticks_ms()
        self.uptime_ms += clock.ticks_diff(now, self._last_tick)
        self._last_tick = now
        if self.watchdog is not None:
            self.watchdog.monitor.beat("tick", now)
        if self.button_check is not None and self.button_check.expired(now):
            self._end_button_check(self.button_check.failure())
            self.refresh(now)
        if self.network is not None:
            self.network.step(now)
        up = self.client.up
        if up != self._link_up:
            self._link_up = up
            self.app.on_link(up, now)
        out = self.app.tick(now)
        if out is not None:
            self.submit(out)
        if self.awaiting is not None and self.awaiting.tick(now):
            self._outbox_event.set()  # not acknowledged in time: the sender sends it again
        if self.updater.trial is not None:
            self._judge_trial(now)
        self._note_errors()
        self.refresh(now)

    # ---------------------------------------------------------------- helpers

    def _screen_loop(self):
        """Whether the panel has a frame loop of its own (a PixelScreen) for run() to start and watch."""
        return hasattr(self.panel, "run") and hasattr(self.panel, "progress_ms")

    def _note_errors(self):
        """The newest problem of the link, the outbox, the network or the screen becomes health's last_error."""
        for name, source, attr in (("link", self.client, "last_error"), ("outbox", self.outbox, "error"),
                                   ("network", self.network, "last_error"),
                                   ("screen", self.panel, "last_error")):
            text = getattr(source, attr, None) if source is not None else None
            if text and self._errors_seen.get(name) != text:
                self._errors_seen[name] = text
                self.last_error = text

    def _health(self):
        self._note_errors()
        fields = {
            "session": self.presence.session,
            "boot": self.presence.boot,
            "uptime_s": self.uptime_ms // 1000,
            "reconnects": self.client.reconnects,
        }
        heap = self.free_heap()
        if heap is not None:
            fields["free_heap"] = heap
        if self.last_error:
            fields["last_error"] = self.last_error
        if self.rssi is not None:
            try:
                value = self.rssi()
                if value is not None:
                    fields["rssi"] = int(value)
            except Exception:
                pass
        return messages.encode("health", messages.make("health", **fields))

    def _topic(self, name):
        return topics.build(name, center=self.center, device=self.device_id, window=self.window)

    def _queue(self, topic, data, qos, retain, first=False):
        item = (topic, data, qos, retain)
        if first:
            self._queue_ram.insert(1 if self._queue_ram else 0, item)  # never displace the one in flight
        else:
            self._queue_ram.append(item)
        while len(self._queue_ram) > RAM_QUEUE_MAX:
            lost = self._queue_ram.pop(1)
            self._log("control queue full, dropped a message for %s" % lost[0])
        self._outbox_event.set()

    def _error(self, text):
        self.last_error = text
        self._log(text)

    def _drop(self, topic, exc):
        self.dropped += 1
        self._log("dropped message on %s: %s" % (topic, exc))

    def _log(self, text):
        if self.log is not None:
            self.log("%s: %s" % (self.device_id, text))
