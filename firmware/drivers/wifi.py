"""Station-mode Wi-Fi behind a plain class (WifiLink), plus the older module functions.

WifiLink has the network-link interface of firmware/lib/netlink.py:
start/is_up/reconnect/mac/rssi, none of which blocks; wait_up() blocks (at
boot only). Its simulated twin is firmware.sim.hardware.SimNetwork.
"""

import time

import network


def _wlan():
    wlan = network.WLAN(network.STA_IF)
    wlan.active(True)
    return wlan


def factory_mac():
    """The Wi-Fi MAC (6 bytes) without starting the radio: creating the interface object initialises
    the Wi-Fi driver, which is all esp_wifi_get_mac needs (checked on paper against the esp32 port)."""
    return network.WLAN(network.STA_IF).config("mac")


def set_hostname(name):
    """The DHCP hostname of every interface: call before any is made active (MicroPython >= 1.20 reads
    it when an interface starts; before that it was the per-interface dhcp_hostname)."""
    setter = getattr(network, "hostname", None)
    if setter is not None:
        setter(name)
    else:
        network.WLAN(network.STA_IF).config(dhcp_hostname=name)


class WifiLink:
    kind = "wifi"

    def __init__(self, ssid, password):
        self.ssid = ssid
        self.password = password
        self._wlan = _wlan()

    def start(self):
        """Begin connecting; returns at once (False when there is no SSID to join)."""
        if self._wlan.isconnected():
            return True
        if not self.ssid:
            print("wifi: no SSID in config.json")
            return False
        self._wlan.connect(self.ssid, self.password)
        return True

    def is_up(self):
        return self._wlan.isconnected()

    def reconnect(self):
        try:
            self._wlan.disconnect()
        except OSError:
            pass
        if self.ssid:
            self._wlan.connect(self.ssid, self.password)

    def wait_up(self, timeout_s=20, feed=None):
        """Block until connected or timeout_s passed. Not connecting is no failure: the supervisor retries.

        feed: called on every round (the hardware watchdog, already running at boot).
        """
        start = time.ticks_ms()
        while not self._wlan.isconnected():
            if feed is not None:
                feed()
            if time.ticks_diff(time.ticks_ms(), start) > timeout_s * 1000:
                print("wifi: not connected to %s yet, carrying on" % self.ssid)
                return False
            time.sleep_ms(200)
        print("wifi: connected to %s, address %s" % (self.ssid, self._wlan.ifconfig()[0]))
        return True

    def mac(self):
        """The board's Wi-Fi MAC (6 bytes): the device id comes from it."""
        return self._wlan.config("mac")

    def rssi(self):
        """Signal strength in dBm (a health field); None while not associated."""
        try:
            return self._wlan.status("rssi")
        except OSError:
            return None


def mac():
    """The board's Wi-Fi MAC (6 bytes): the device id comes from it."""
    return _wlan().config("mac")


def connect(ssid, password, timeout_s=20):
    """Start connecting and wait up to timeout_s. Returns True once connected.

    Not connecting in time is no failure: the radio keeps trying by itself
    and the MQTT link retries with backoff, so the device starts anyway.
    """
    link = WifiLink(ssid, password)
    if not link.start():
        return False
    return link.wait_up(timeout_s)


def rssi():
    """Signal strength in dBm (a health field)."""
    return _wlan().status("rssi")
