"""tools/mosquitto.py starts our own broker, and never hands a test somebody else's (issue 17: tests side by side).

With two `make test` runs at once, a port picked as free can be taken by another program before Mosquitto binds
it. Mosquitto then exits with "Address already in use", but the port answers (the other program listens), so a
start that only waited for the port to open returned a dead broker, and the test went on talking to another
test's broker: a retained message signed with another test's key failed to verify now and then.
"""

from __future__ import annotations

import socket

import paho.mqtt.client as mqtt
import pytest

import tools.mosquitto as mosquitto
from tools.mosquitto import BrokerPortTaken, MosquittoBroker, listens_on

pytestmark = pytest.mark.broker


@pytest.fixture
def foreign_listener():
    """Another program listening on a port of 127.0.0.1 (it never speaks MQTT)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock
    sock.close()


def test_a_port_taken_after_it_was_picked_gives_our_broker_another_port(tmp_path, foreign_listener,
                                                                       monkeypatch) -> None:
    broker = MosquittoBroker(tmp_path, "county")
    taken = broker.port = foreign_listener.getsockname()[1]
    real_port_is_open = mosquitto.port_is_open
    checks: list[int] = []

    def free_at_first_look(port: int, host: str = "127.0.0.1") -> bool:
        # The other program takes the port just after the broker's first look found it free.
        checks.append(port)
        return False if len(checks) == 1 else real_port_is_open(port, host)

    monkeypatch.setattr(mosquitto, "port_is_open", free_at_first_look)
    broker.start()
    try:
        assert broker.port != taken
        assert broker.process is not None and broker.process.poll() is None
        assert listens_on(broker.process.pid, broker.port) is True
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        assert client.connect("127.0.0.1", broker.port) == mqtt.MQTT_ERR_SUCCESS
        client.disconnect()
    finally:
        broker.stop()


def test_a_given_port_that_is_taken_is_refused_and_kept_on_restart(tmp_path, foreign_listener) -> None:
    taken = foreign_listener.getsockname()[1]
    with pytest.raises(BrokerPortTaken, match=f"port {taken} is already in use"):
        MosquittoBroker(tmp_path, "center", port=taken).start()

    broker = MosquittoBroker(tmp_path, "county").start()
    try:
        port = broker.port
        assert listens_on(broker.process.pid, port) is True
        assert listens_on(broker.process.pid, taken) is False  # the other program's socket is not ours
        broker.restart()
        assert broker.port == port and listens_on(broker.process.pid, port) is True
    finally:
        broker.stop()


def test_a_free_port_is_one_outgoing_connections_never_take() -> None:
    """Below the kernel's ephemeral range: a client's source port never collides with a server started next."""
    low, _high = mosquitto._ephemeral_range()
    ports = {mosquitto.free_port() for _ in range(20)}
    assert all(port < low for port in ports), ports
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))  # and free now
