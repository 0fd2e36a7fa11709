"""Pick and start the board's network link from config.json ("network": "wifi" or "ethernet")."""

from firmware.drivers import wifi

BOOT_WAIT_S = 20


def _driver(cfg):
    if cfg.network == "ethernet":
        from firmware.drivers.ethernet import EthernetLink

        return EthernetLink(**cfg.ethernet)
    return wifi.WifiLink(cfg.wifi_ssid, cfg.wifi_password)


def open_link(cfg):
    """The link driver for `cfg` (a firmware.lib.config.Config), started; waits up to BOOT_WAIT_S for it.

    Not being up yet is no failure: the runtime's LinkSupervisor keeps trying.
    """
    link = _driver(cfg)
    if link.start() and hasattr(link, "wait_up"):
        link.wait_up(BOOT_WAIT_S)
    return link
