"""Registering a device with the fleet, which answers with its credentials.

Online: POST /api/devices/register with the technician's API token (`--fleet URL --token TOKEN`,
or FLEET_URL / FLEET_TOKEN); the fleet answers the device's broker user name and password and its
signing key, keeping only a hash of the password and the key sealed. Registering a device again
rotates both, unless the board's config.json already holds them (`held_credentials`): they are sent
as proof (`keep`) and the fleet keeps them when they are the registered ones and center, window and
role are unchanged (`--new-credentials` never offers them). Offline (`--pack FILE`, or the fleet
unreachable while a pack is given): the next slot of a credential pack, and a pending registration
that `provision sync` sends later. With neither a fleet nor a pack nothing is registered and
config.json carries no credentials.

What goes in the provisioning records is the outcome (`Registration.outcome`), never a secret.

The fleet's URL must be https://: the API token goes to it and the device's broker password and key come
back. An http:// URL is refused unless the technician says `--insecure` (a test fleet on this machine),
and then every record of that run says the registration went over plain http.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from provisioning import credential_pack
from provisioning.device_config import DeviceCredentials, DeviceSettings
from provisioning.errors import ProvisionError

REGISTER_PATH = "/api/devices/register"
TIMEOUT_S = 15.0
PROXY_NO_ANSWER = (502, 503, 504)
PACK_SLOT_USER = re.compile(r"^p\d+-\d+$")  # a credential-pack slot's broker user name
NO_FLEET = ("no fleet given (--fleet URL and --token, or FLEET_URL and FLEET_TOKEN; or --pack FILE): not "
            "registered, config.json gets no broker credentials and no device key")


class FleetUnreachable(ProvisionError):
    """The fleet did not answer at all (as opposed to refusing)."""


class FleetRefused(ProvisionError):
    """The fleet answered with an error status (`status`)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class FleetOptions:
    url: str | None
    token: str | None
    pack: Path | None
    pending: Path  # the pending-registrations file, next to the records
    in_clear: bool = False  # an http:// fleet, allowed by --insecure: the records say so


@dataclass(frozen=True)
class Registration:
    credentials: DeviceCredentials | None
    outcome: str  # for the records and the progress line: online / offline pack slot / not registered


def options_from_arguments(fleet: str | None, token: str | None, pack: str | None,
                           records_path: Path, insecure: bool = False) -> FleetOptions:
    url = (fleet or os.environ.get("FLEET_URL") or "").strip().rstrip("/") or None
    token = (token or os.environ.get("FLEET_TOKEN") or "").strip() or None
    if url is not None and not url.startswith(("http://", "https://")):
        raise ProvisionError(f"--fleet must be an https:// URL, got {url!r}")
    in_clear = url is not None and url.startswith("http://")
    if in_clear and not insecure:
        raise ProvisionError(f"--fleet {url} is plain http: the API token, and the broker password and device key "
                             "the fleet answers, would cross the network unencrypted. Use the fleet's https:// "
                             "address, or add --insecure for a test fleet (the records then say so)")
    if url is not None and token is None:
        raise ProvisionError("--fleet needs an API token: --token TOKEN or FLEET_TOKEN (python -m fleet tokens create)")
    return FleetOptions(url, token, Path(pack) if pack else None, credential_pack.pending_path(records_path),
                        in_clear)


IN_CLEAR_NOTE = ", over plain http (--insecure)"  # appended to what the records say of an http:// fleet


def device_facts(device_id: str, mac: str, settings: DeviceSettings, image_sha256: str, technician: str,
                 provisioned_at: datetime | None = None) -> dict[str, Any]:
    """The body of a registration (without pack_slot)."""
    return {"device_id": device_id, "center": settings.center, "window": settings.window, "role": settings.role,
            "board": settings.board, "mac": mac, "image_sha256": image_sha256, "provisioned_by": technician,
            "provisioned_at": (provisioned_at or datetime.now(UTC)).isoformat(timespec="seconds")}


def post_registration(url: str, token: str, body: dict[str, Any]) -> dict[str, Any]:
    """The fleet's answer; FleetUnreachable when it does not answer (a proxy in front of it answering 502,
    503 or 504 for it counts as no answer), FleetRefused when it refuses."""
    try:
        response = httpx.post(url + REGISTER_PATH, json=body, timeout=TIMEOUT_S,
                              headers={"Authorization": f"Bearer {token}"})
    except httpx.InvalidURL as exc:
        raise ProvisionError(f"--fleet {url} is not a usable URL: {exc}") from None
    except httpx.HTTPError as exc:
        raise FleetUnreachable(f"cannot reach the fleet at {url}: {exc or type(exc).__name__}") from None
    if response.status_code == 401:
        raise ProvisionError(f"the fleet at {url} does not accept the API token (401): check --token / FLEET_TOKEN")
    if response.status_code in PROXY_NO_ANSWER:
        raise FleetUnreachable(f"the fleet at {url} is not answering ({response.status_code} from the server in "
                               "front of it)")
    if response.status_code != 200:
        detail = _refusal_detail(response)
        raise FleetRefused(f"the fleet refused to register {body['device_id']} ({response.status_code}): {detail}",
                           response.status_code)
    try:
        return response.json()
    except ValueError:
        raise ProvisionError(f"the fleet at {url} answered something that is not JSON") from None


def _refusal_detail(response: httpx.Response) -> str:
    """The fleet's reason; for a validation error (422) where and what only, never the value it refused
    (which may be a password or key the board held)."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return response.text[:200]
    if isinstance(detail, list):
        return "; ".join(f"{'.'.join(str(part) for part in item.get('loc', ()))}: {item.get('msg')}"
                         for item in detail if isinstance(item, dict))
    return str(detail)


def held_credentials(config: bytes | None, device_id: str) -> DeviceCredentials | None:
    """The credentials in the board's current config.json, if it holds a complete set for `device_id`."""
    if config is None:
        return None
    try:
        data = json.loads(config.decode("utf-8"))
        broker = data["broker"]
        held = DeviceCredentials(broker["username"], broker["password"], data["device_key"])
    except (UnicodeDecodeError, ValueError, KeyError, TypeError):
        return None  # not a config.json provisioning wrote: nothing to keep
    if not held.complete():
        return None
    if held.broker_username != device_id and not PACK_SLOT_USER.match(held.broker_username):
        return None
    return held


def register_online(options: FleetOptions, facts: dict[str, Any], held: DeviceCredentials | None = None,
                    none_held: str = "no credentials on the board") -> Registration:
    """Registered by the fleet; `held` (the board's credentials) are offered to be kept, else `none_held` says
    why none were offered."""
    body = dict(facts)
    if held is not None:  # goes to the fleet only, never into the records
        body["keep"] = {"broker_username": held.broker_username, "broker_password": held.broker_password,
                        "device_key": held.device_key_hex}
    answer = post_registration(options.url or "", options.token or "", body)
    try:
        credentials = DeviceCredentials(answer["broker_username"], answer["broker_password"], answer["device_key"])
    except KeyError as exc:
        raise ProvisionError(f"the fleet's answer lacks {exc}") from None
    if not credentials.complete():
        raise ProvisionError("the fleet answered without credentials")
    # What the fleet holds now is this registration: an older offline one must never be synced over it.
    credential_pack.supersede_pending(options.pending, facts["device_id"],
                                      f"registered online (registration {answer.get('registrations')})")
    if answer.get("kept"):
        verdict = "credentials kept"
    elif held is None and answer.get("registrations") == 1:
        verdict = "new credentials"
    else:
        why = none_held if held is None else answer.get("rotated_because") or "the fleet did not say why"
        verdict = f"credentials rotated ({why})"
    in_clear = IN_CLEAR_NOTE if options.in_clear else ""
    return Registration(credentials, f"online: registration {answer.get('registrations')} as "
                                     f"{credentials.broker_username}, {verdict}{in_clear}")


def register_offline(options: FleetOptions, facts: dict[str, Any], why: str = "") -> Registration:
    assert options.pack is not None
    taken = credential_pack.take_slot(options.pack, facts["center"], facts["device_id"])
    # Every offline run (a rerun too: its window or role may have changed, or the first run's line was
    # never written) leaves exactly one pending line for the device, with what the board has now.
    credential_pack.record_pending(options.pending, {**facts, "pack_slot": taken.slot, "pack": str(options.pack)})
    note = f" ({why})" if why else ""
    again = ", taken before" if taken.reused else ""
    return Registration(taken.credentials,
                        f"offline: pack slot {taken.slot}{again}, pending until provision sync{note}")


def register(options: FleetOptions, facts: dict[str, Any], held: DeviceCredentials | None = None,
             none_held: str = "no credentials on the board") -> Registration:
    """Online when a fleet is given, falling back to the pack only when the fleet does not answer."""
    if options.url is not None:
        try:
            return register_online(options, facts, held, none_held)
        except FleetUnreachable as exc:
            if options.pack is None:
                raise ProvisionError(f"{exc}; nothing was copied to the board. Connect to the fleet, or provision "
                                     "offline with --pack FILE (a credential pack saved from the fleet)") from None
            return register_offline(options, facts, why=str(exc))
    if options.pack is not None:
        return register_offline(options, facts)
    return Registration(None, "not registered: no fleet and no pack given")
