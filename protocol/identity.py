"""Identities: centers by administrative division code, devices by MAC."""

from protocol.errors import ProtocolError

CENTER_CODE_LENGTH = 12  # 6 digits county, 3 town, 3 village (统计用区划代码)
DEVICE_ID_PREFIX = "dev-"
MAX_WINDOW = 999


def _is_digits(text):
    if not text:
        return False
    for ch in text:
        if ch < "0" or ch > "9":
            return False
    return True


def check_center_code(code):
    """Return `code` if it is a 12-digit division code, else raise."""
    if not isinstance(code, str) or len(code) != CENTER_CODE_LENGTH or not _is_digits(code):
        raise ProtocolError("center code must be 12 digits, got %r" % (code,))
    return code


def county_code(center_code):
    return check_center_code(center_code)[:6]


def town_code(center_code):
    return check_center_code(center_code)[:9]


def normalise_mac(mac):
    """'A4:CF:12:AB:34:CD', 'a4-cf-12-ab-34-cd' or bytes -> 'a4cf12ab34cd'."""
    if isinstance(mac, (bytes, bytearray)):
        if len(mac) != 6:
            raise ProtocolError("MAC must be 6 bytes, got %d" % len(mac))
        return "".join("%02x" % b for b in mac)
    if not isinstance(mac, str):
        raise ProtocolError("MAC must be text or bytes")
    hex_digits = ""
    for ch in mac.lower():
        if ch in ":-.":
            continue
        if ch not in "0123456789abcdef":
            raise ProtocolError("MAC has a character that is not hex: %r" % (mac,))
        hex_digits += ch
    if len(hex_digits) != 12:
        raise ProtocolError("MAC must have 12 hex digits, got %r" % (mac,))
    return hex_digits


def device_id_from_mac(mac):
    """A device id is stable for the life of the board: derived from its MAC only."""
    return DEVICE_ID_PREFIX + normalise_mac(mac)


def check_device_id(device_id):
    if (
        not isinstance(device_id, str)
        or not device_id.startswith(DEVICE_ID_PREFIX)
        or len(device_id) != len(DEVICE_ID_PREFIX) + 12
    ):
        raise ProtocolError("device id must look like dev-a4cf12ab34cd, got %r" % (device_id,))
    mac = device_id[len(DEVICE_ID_PREFIX):]
    if normalise_mac(mac) != mac:
        # One board, one id: 'dev-A4CF...' would be a second name for it (and ACLs are case-sensitive).
        raise ProtocolError("device id must use lower-case hex, got %r" % (device_id,))
    return device_id


def check_window(window):
    if isinstance(window, bool) or not isinstance(window, int) or window < 1 or window > MAX_WINDOW:
        raise ProtocolError("window must be an integer 1..%d, got %r" % (MAX_WINDOW, window))
    return window


# The provisioning laptop watches a device it has just set up (its birth, its self-test) on the center broker.
# The broker binds client ids to user names (so no account can take over another's connection), so the laptop
# cannot use the device's own account while the device is connected: it logs in as the account's check
# account, with the device's password. The fleet keeps such accounts in the center broker's files only briefly
# after a registration, and for unbound credential-pack slots (fleet/registration/broker_files.py).
CHECK_ACCOUNT_SUFFIX = ".check"


def check_account(broker_username):
    """The check account of the broker account `broker_username` (a device id or a pack slot)."""
    return broker_username + CHECK_ACCOUNT_SUFFIX
