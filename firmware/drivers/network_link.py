"""Pick and start the board's network link from config.json ("network": "wifi" or "ethernet")."""

from firmware.drivers import wifi
from protocol import identity

BOOT_WAIT_S = 20


def board_ethernet(board_name, load=None):
    """The "ethernet" object of the board definition, or None (no port, or no usable definition)."""
    from firmware.lib import boards

    try:
        return (load or boards.load)(board_name).get("ethernet")
    except boards.BoardError as exc:
        print("network: %s" % exc)
        return None


def _driver(cfg):
    if cfg.network == "ethernet":
        # The PHY and its pins are the board's, checked against its pin map (firmware.lib.boards).
        wiring = board_ethernet(cfg.board)
        if wiring is not None:
            from firmware.drivers.ethernet import EthernetLink

            return EthernetLink(**wiring)
        print("network: board %s has no Ethernet port in its definition; using Wi-Fi" % cfg.board)
    return wifi.WifiLink(cfg.wifi_ssid, cfg.wifi_password)


def hostname(cfg):
    """The board's DHCP hostname: its device id, so a center's router lists each board by the id the
    fleet knows, instead of every one as mpy-esp32."""
    return identity.device_id_from_mac(cfg.mac or wifi.factory_mac())


def open_link(cfg, feed=None):
    """The link driver for `cfg` (a firmware.lib.config.Config), started; waits up to BOOT_WAIT_S for it.

    The hostname is set first, before any interface is active. Not being up yet is no failure: the
    runtime's LinkSupervisor keeps trying. feed: called while waiting (the hardware watchdog).
    """
    wifi.set_hostname(hostname(cfg))
    link = _driver(cfg)
    if link.start() and hasattr(link, "wait_up"):
        link.wait_up(BOOT_WAIT_S, feed)
    return link
