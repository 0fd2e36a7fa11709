"""DeviceRuntime: wires config, the MQTT link, presence, health and one app.

The app (QueueDisplayApp, RatingPadApp) is pure: it gets decoded payloads,
link changes, ticks and button presses, and returns payloads to publish.
The runtime does all the I/O: it publishes what the app returns, draws the
app's lines on the panel when they change, sends the birth after every
connect and a health heartbeat every health_interval_s.

Malformed messages are printed and dropped; nothing a broker sends can
stop the device.
"""

import asyncio
import gc

from firmware.lib import clock, presence
from firmware.lib.mqtt import MQTTClient
from protocol import identity, messages, topics
from protocol.errors import ProtocolError

FW_VERSION = "0.1.0"
TICK_MS = 200
OUTBOX_MAX = 32


def _free_heap():
    try:
        return gc.mem_free()
    except AttributeError:
        return None


class DeviceRuntime:
    def __init__(self, config, app, state_dir="", panel=None, fw=FW_VERSION, backoff_min_s=0.5,
                 backoff_max_s=30, tick_ms=TICK_MS, rssi=None, log=print):
        self.config = config
        self.app = app
        self.panel = panel
        self.log = log
        self.rssi = rssi  # optional callable: Wi-Fi signal in dBm
        self.tick_ms = tick_ms
        self.device_id = identity.device_id_from_mac(config.mac)
        self.center = config.center
        self.window = config.window
        self.presence = presence.Presence(
            config.center, self.device_id, app.role, config.window, config.board, fw,
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
        self.uptime_ms = 0
        self.dropped = 0  # malformed or unknown messages
        self.received = 0
        self._outbox = []  # [topic, payload bytes, qos, retain]
        self._outbox_event = asyncio.Event()
        self._link_up = False
        self._last_tick = None
        self._shown = None
        self._tasks = []
        self.refresh()

    @property
    def session(self):
        return self.presence.session

    # ----------------------------------------------------------------- public

    async def run(self):
        """Run until stop(): the link, the heartbeat, the ticker and the sender."""
        await self.client.subscribe(self.presence.topic, self.presence.qos)
        for name in self.app.SUBSCRIBES:
            await self.client.subscribe(self._topic(name), topics.topic(name).qos)
        self._tasks = [
            asyncio.create_task(self._sender()),
            asyncio.create_task(self._heartbeat()),
            asyncio.create_task(self._ticker()),
        ]
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
        """A rating button. True if the app accepted it and its payload is queued."""
        payload = self.app.press(score, clock.ticks_ms())
        self.refresh()
        if payload is None:
            return False
        self.submit(payload)
        return True

    def submit(self, payload):
        """Queue a payload of the app's EMITS topic (published in order, survives link loss)."""
        name = self.app.EMITS
        spec = topics.topic(name)
        data = messages.encode(spec.payload, payload)
        self._queue(self._topic(name), data, spec.qos, spec.retained)

    def refresh(self):
        """Draw the app's lines on the panel if they changed.

        Apps count their changes, so the 5-per-second ticker allocates
        nothing when nothing happened.
        """
        changes = self.app.changes
        if changes == self._shown:
            return
        self._shown = changes
        if self.panel is not None:
            self.app.render(self.panel)

    @property
    def lines(self):
        return self.app.lines()

    # ---------------------------------------------------------------- the link

    async def _on_connect(self):
        await self.client.publish(self.presence.topic, self.presence.birth(), self.presence.qos,
                                  self.presence.retain)
        self.presence.birth_sent = True

    def _on_message(self, topic, payload, retained):
        self.received += 1
        try:
            name, params = topics.parse(topic)
        except ProtocolError as exc:
            self._drop(topic, exc)
            return
        if not payload:
            return  # a retained message being cleared
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

    # ------------------------------------------------------------------ tasks

    async def _sender(self):
        while True:
            if not self._outbox:
                self._outbox_event.clear()
                await self._outbox_event.wait()
                continue
            topic, data, qos, retain = self._outbox[0]  # stays first until sent
            try:
                await self.client.publish(topic, data, qos, retain)
            except Exception as exc:  # only when the client is closed
                self._log("sender stopped: %s" % exc)
                return
            self._outbox.pop(0)

    async def _heartbeat(self):
        interval = self.config.health_interval_s
        while True:
            await asyncio.sleep(interval)
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

    def _tick(self):
        now = clock.ticks_ms()
        if self._last_tick is not None:
            self.uptime_ms += clock.ticks_diff(now, self._last_tick)
        self._last_tick = now
        up = self.client.up
        if up != self._link_up:
            self._link_up = up
            self.app.on_link(up, now)
        out = self.app.tick(now)
        if out is not None:
            self.submit(out)
        self.refresh()

    # ---------------------------------------------------------------- helpers

    def _health(self):
        fields = {
            "session": self.presence.session,
            "uptime_s": self.uptime_ms // 1000,
            "reconnects": self.client.reconnects,
        }
        heap = _free_heap()
        if heap is not None:
            fields["free_heap"] = heap
        if self.client.last_error:
            fields["last_error"] = self.client.last_error
        if self.rssi is not None:
            try:
                fields["rssi"] = int(self.rssi())
            except Exception:
                pass
        return messages.encode("health", messages.make("health", **fields))

    def _topic(self, name):
        return topics.build(name, center=self.center, device=self.device_id, window=self.window)

    def _queue(self, topic, data, qos, retain, first=False):
        item = (topic, data, qos, retain)
        if first:
            self._outbox.insert(1 if self._outbox else 0, item)  # never displace the one in flight
        else:
            self._outbox.append(item)
        while len(self._outbox) > OUTBOX_MAX:
            lost = self._outbox.pop(1)
            self._log("outbox full, dropped a message for %s" % lost[0])
        self._outbox_event.set()

    def _drop(self, topic, exc):
        self.dropped += 1
        self._log("dropped message on %s: %s" % (topic, exc))

    def _log(self, text):
        if self.log is not None:
            self.log("%s: %s" % (self.device_id, text))
