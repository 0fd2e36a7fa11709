"""Station-mode Wi-Fi: connect from config, report MAC and signal."""

import time

import network


def _wlan():
    wlan = network.WLAN(network.STA_IF)
    wlan.active(True)
    return wlan


def mac():
    """The board's Wi-Fi MAC (6 bytes): the device id comes from it."""
    return _wlan().config("mac")


def connect(ssid, password, timeout_s=20):
    """Start connecting and wait up to timeout_s. Returns True once connected.

    Not connecting in time is no failure: the radio keeps trying by itself
    and the MQTT link retries with backoff, so the device starts anyway.
    """
    wlan = _wlan()
    if wlan.isconnected():
        return True
    if not ssid:
        print("wifi: no SSID in config.json")
        return False
    wlan.connect(ssid, password)
    start = time.ticks_ms()
    while not wlan.isconnected():
        if time.ticks_diff(time.ticks_ms(), start) > timeout_s * 1000:
            print("wifi: not connected to %s yet, carrying on" % ssid)
            return False
        time.sleep_ms(200)
    print("wifi: connected to %s, address %s" % (ssid, wlan.ifconfig()[0]))
    return True


def rssi():
    """Signal strength in dBm (a health field)."""
    return _wlan().status("rssi")
