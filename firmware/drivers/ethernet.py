"""Wired Ethernet (ESP32 internal MAC + an RMII PHY) behind a plain class.

For boards with an Ethernet port: the PHY type and its pins come from the
board definition's "ethernet" object (hardware/boards, e.g. the
ESP32-Ethernet-Kit's IP101 with its clock into GPIO0), where
firmware.lib.boards checks them against the board's pin map. There are no
default pins: the ESP32's RMII pins (19, 21, 22, 25-27) and the usual MDC/MDIO
(23, 18) are the ones both DevKitC pin maps use for the panel and buttons.
Boards built on a WROOM module (WT32-ETH01, Olimex ESP32-POE) have no PSRAM
for the firmware (hardware/README.md). EthernetLink has the network-link interface of
firmware/lib/netlink.py; its simulated twin is firmware.sim.hardware.SimNetwork.
The device id still comes from the board's Wi-Fi MAC (the factory MAC that
every ESP32 has), so a board keeps its id whichever link it uses.
"""

import network
from machine import Pin


class EthernetLink:
    kind = "ethernet"

    def __init__(self, phy, phy_addr, mdc, mdio, ref_clk, ref_clk_mode, power=None):
        """The board definition's "ethernet" object as keyword arguments (firmware.lib.boards)."""
        kwargs = {"mdc": Pin(mdc), "mdio": Pin(mdio), "phy_type": getattr(network, "PHY_" + phy),
                  "phy_addr": phy_addr, "ref_clk": Pin(ref_clk),
                  "ref_clk_mode": Pin.IN if ref_clk_mode == "in" else Pin.OUT}
        if power is not None:
            kwargs["power"] = Pin(power)
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
