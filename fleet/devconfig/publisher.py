"""Publishing to the county broker: anything with `publish(topic, payload, qos, retain) -> bool`.

The fleet reuses the ingest's paho client (MQTT v5, `Ingest.publish`); without an
ingest (--no-ingest) nothing is published and configuration waits as pending.
"""

from __future__ import annotations

from typing import Protocol


class Publisher(Protocol):
    def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> bool:
        """True when the client accepted the message for sending (QoS 1: it resends until PUBACK)."""
        ...
