"""After the reset: the device's birth on the center broker, and its self-test over MQTT.

The laptop joins the center's network and talks to the center broker with the device's new password, as
the check account of the device's account (protocol.identity.check_account: the broker binds client ids to
user names, so the device's own account would take the device's connection over): that the broker lets
it in is already part of the check. It subscribes to the device's presence and command acknowledgements
*before* the board is reset, so the birth that follows arrives as a live message, never mistaken for
the retained birth of an earlier boot. Commands are signed with the device key just issued, exactly as
the fleet signs them, so a passing self-test also proves the device holds the right key.
"""

from __future__ import annotations

import json
import queue
import secrets
import time
from dataclasses import dataclass

import paho.mqtt.client as mqtt

from protocol import identity, messages, signing, topics
from protocol.errors import ProtocolError
from provisioning.errors import ProvisionError

CONNECT_TIMEOUT_S = 10.0
RETRY_S = 1.0  # between tries while the broker does not know the credentials yet
ACK_MARGIN_S = 10.0  # beyond the self-test's own time: the acknowledgement's way back
PAD_BUTTONS = (5, 4, 3, 2, 1)  # left to right, as firmware.rating_pad.app.BUTTON_SCORES


@dataclass(frozen=True)
class Birth:
    session: int
    fw: str
    board: str
    contract: int
    boot: str | None  # the boot id the device drew at this start: a command names it (docs/protocol.md)


class DeviceLink:
    """One MQTT connection to the center broker, watching one device."""

    def __init__(self, host: str, port: int, center: str, device_id: str, username: str | None,
                 password: str | None, accept_timeout: float = 0.0) -> None:
        """Connect; while the broker refuses the credentials, try again for `accept_timeout` seconds.

        A device registered a moment ago is refused until the fleet's new account files have reached the
        center broker (fleet -> county broker -> edge agent -> Mosquitto reload, usually seconds).
        """
        self.center, self.device_id = center, device_id
        self.where = f"the center broker {host}:{port}"
        self._messages: queue.Queue[tuple[str, bytes, bool]] = queue.Queue()
        deadline = time.monotonic() + accept_timeout
        while True:
            refused = self._connect(host, port, username, password)
            if refused is None:
                break
            if time.monotonic() >= deadline:
                raise ProvisionError(
                    f"{self.where} refused the device's credentials ({refused}) for {accept_timeout:.0f} s: has "
                    "it got the fleet's new account files? (the edge agent installs them; by hand: python -m "
                    "fleet broker-files)")
            time.sleep(RETRY_S)
        for name in (topics.DEVICE_PRESENCE, topics.DEVICE_COMMAND_ACK):
            self._client.subscribe(topics.build(name, center=center, device=device_id), qos=1)

    def _connect(self, host: str, port: int, username: str | None, password: str | None) -> str | None:
        """None when connected, else why the broker refused."""
        connected: queue.Queue[str | None] = queue.Queue()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                             client_id=f"{self.device_id}-provision-{secrets.token_hex(3)}")
        if username is not None:
            client.username_pw_set(username, password)
        client.on_connect = lambda _c, _u, _f, code, _p=None: connected.put(None if not code.is_failure
                                                                            else str(code))
        client.on_message = lambda _c, _u, msg: self._messages.put((msg.topic, msg.payload, msg.retain))
        try:
            client.connect(host, port, keepalive=30)
        except OSError as exc:
            raise ProvisionError(f"cannot reach {self.where} from this laptop: {exc} (is the laptop on the "
                                 "center's network? --no-check skips the checks after the reset)") from None
        client.loop_start()
        try:
            refused = connected.get(timeout=CONNECT_TIMEOUT_S)
        except queue.Empty:
            refused = "no answer"
        if refused is not None:
            client.loop_stop()
            client.disconnect()
            if refused == "no answer":
                raise ProvisionError(f"{self.where} does not answer MQTT")
            return refused
        self._client = client
        return None

    def wait_birth(self, timeout: float) -> Birth:
        """The device's next birth (live, not retained)."""
        presence = topics.build(topics.DEVICE_PRESENCE, center=self.center, device=self.device_id)
        deadline = time.monotonic() + timeout
        while True:
            topic, payload = self._next(deadline, f"no birth from {self.device_id} within {timeout:.0f} s of "
                                                  "its reset: check the Wi-Fi name and password and the broker "
                                                  "address in config.json, and that the board's antenna is fitted")
            if topic != presence:
                continue
            try:
                birth = messages.decode("presence", payload)
            except ProtocolError:
                continue  # not ours to judge here; the fleet logs malformed payloads
            if birth["state"] == messages.ONLINE:
                return Birth(birth["session"], birth["fw"], birth["board"], birth["contract"], birth.get("boot"))

    def run_command(self, key: bytes, command: str, boot: str | None, timeout: float, **args: object) -> dict:
        """Send one signed command for the device's `boot` and wait for its acknowledgement (done, rejected or
        failed). Issued by this laptop's clock, which the device does not let move its own reckoning."""
        command_id = messages.PROVISIONING_COMMAND_PREFIX + secrets.token_hex(6)
        payload = signing.make_signed("command", key, self.device_id, command_id=command_id, command=command,
                                      args=args or None, issued_by="provisioning", boot=boot,
                                      issued_at=int(time.time()), valid_s=messages.COMMAND_VALID_S)
        topic = topics.build(topics.DEVICE_COMMAND, center=self.center, device=self.device_id)
        self._client.publish(topic, json.dumps(payload), qos=1)
        ack_topic = topics.build(topics.DEVICE_COMMAND_ACK, center=self.center, device=self.device_id)
        deadline = time.monotonic() + timeout
        while True:
            topic, raw = self._next(deadline, f"{self.device_id} did not acknowledge {command} within "
                                              f"{timeout:.0f} s")
            if topic != ack_topic:
                continue
            try:
                ack = messages.decode("command_ack", raw)
            except ProtocolError:
                continue
            if ack["command_id"] == command_id:
                return ack

    def _next(self, deadline: float, timeout_message: str) -> tuple[str, bytes]:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ProvisionError(timeout_message)
            try:
                topic, payload, retained = self._messages.get(timeout=left)
            except queue.Empty:
                continue
            if not retained:
                return topic, payload

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


def restart_and_check(board, device_id: str, settings, credentials, progress, online_timeout: float,
                      self_test_s: float, check: bool = True) -> str:
    """Steps `restart`, `online` and `self-test`; what the record says about them.

    `board` is the open transport.Board (closed by the reset), `credentials` the DeviceCredentials from
    the fleet or a credential pack (None: no broker account, no key, so no signed self-test).
    """
    link: DeviceLink | None = None
    try:
        if check:
            with progress.step("broker") as step:
                # Not the device's own account: the center broker binds client ids to user names, so the laptop
                # would take the device's connection over. Its check account has the same password.
                username = identity.check_account(credentials.broker_username) if credentials else None
                password = credentials.broker_password if credentials else None
                link = DeviceLink(settings.broker_host, settings.broker_port, settings.center, device_id,
                                  username, password, accept_timeout=online_timeout)
                step.detail = f"watching {device_id} on {link.where}" + (f" as {username}" if username else "")
        with progress.step("restart") as step:
            board.hard_reset()
            step.detail = "machine.reset(): the firmware starts"
        if link is None:
            progress.report("skipped", "online", "--no-check: not waiting for the device's birth")
            return "restarted, not checked"
        with progress.step("online") as step:
            birth = link.wait_birth(online_timeout)
            step.detail = (f"birth from {device_id}: firmware {birth.fw} on {birth.board}, contract "
                           f"{birth.contract}, session {birth.session}")
        with progress.step("self-test") as step:
            if credentials is None:
                step.skip("no device key (no fleet registration), so no signed test command")
                return "online"
            seconds = max(1, min(int(self_test_s), messages.COMMAND_MAX_SECONDS))
            if settings.role == messages.ROLE_RATING_PAD:
                progress.line(f"  press each button of the pad once ({seconds} s): "
                              + ", ".join(messages.RATING_LABELS[score] for score in PAD_BUTTONS))
            else:
                progress.line(f"  look at the display: it shows its test pattern for {seconds} s")
            ack = link.run_command(bytes.fromhex(credentials.device_key_hex), messages.COMMAND_SELF_TEST, birth.boot,
                                   seconds + ACK_MARGIN_S, seconds=seconds)
            if ack["status"] != messages.COMMAND_DONE:
                raise ProvisionError(f"the self-test {ack['status']} on {device_id}: "
                                     f"{ack.get('error') or 'no reason given'}")
            step.detail = ("every button answered" if settings.role == messages.ROLE_RATING_PAD
                           else "test pattern shown") + " (signed command acknowledged: the device holds its key)"
        return "online, self-test passed"
    finally:
        if link is not None:
            link.close()
