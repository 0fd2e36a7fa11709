"""A small paho-mqtt client for tests: publish, and record what arrives."""

from __future__ import annotations

import threading

import paho.mqtt.client as mqtt

from tests.support.waiting import wait_until


class Recorder:
    """Connects to a real broker, subscribes, and keeps every message (topic, payload, retain)."""

    def __init__(self, port: int, *filters: str, client_id: str = "") -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        wait_until(self.client.is_connected, what="test MQTT client connected")
        for topic_filter in filters:
            result, mid = self.client.subscribe(topic_filter, qos=1)
            assert result == mqtt.MQTT_ERR_SUCCESS

    def _on_message(self, _client, _userdata, message) -> None:
        with self._lock:
            self.messages.append((message.topic, bytes(message.payload), bool(message.retain)))

    def on(self, topic: str) -> list[bytes]:
        with self._lock:
            return [payload for t, payload, _ in self.messages if t == topic]

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(10)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
