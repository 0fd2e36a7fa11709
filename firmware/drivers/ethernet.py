"""Wired Ethernet (ESP32 internal MAC + an RMII PHY) behind a plain class.

For boards with an Ethernet port (e.g. WT32-ETH01, Olimex ESP32-POE): the
PHY type and its pins come from config.json's "ethernet" object (or the
board definition). EthernetLink has the network-link interface of
firmware/lib/netlink.py; its simulated twin is firmware.sim.hardware.SimNetwork.
The device id still comes from the board's Wi-Fi MAC (the factory MAC that
every ESP32 has), so a board keeps its id whichever link it uses.
"""

import network
from machine import Pin


class EthernetLink:
    kind = "ethernet"

    def __init__(self, phy="LAN8720", phy_addr=1, mdc=23, mdio=18, power=None, ref_clk=None):
        kwargs = {"mdc": Pin(mdc), "mdio": Pin(mdio), "phy_type": getattr(network, "PHY_" + phy),
                  "phy_addr": phy_addr}
        if power is not None:
            kwargs["power"] = Pin(power)
        if ref_clk is not None:
            kwargs["ref_clk"] = Pin(ref_clk)
        self._lan = network.LAN(**kwargs)

    def start(self):
        """Bring the interface up; DHCP runs by itself. Returns at once."""
        self._lan.active(True)
        return True

    def is_up(self):
        return self._lan.isconnected()

    def reconnect(self):
        # A cable pulled and plugged back in recovers by itself; cycling the
        # interface restarts DHCP when the lease was lost meanwhile.
        self._lan.active(False)
        self._lan.active(True)

    def mac(self):
        return network.WLAN(network.STA_IF).config("mac")

    def rssi(self):
        return None  # no radio
