"""USB serial ports, and which of them are ESP32-class boards (by the USB VID/PID of their serial bridge)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

# The USB serial bridges of ESP32 development boards. A match means "probably an ESP32 board", not
# "certainly": the same bridges sit in other gadgets, so `provision list --probe` asks the board itself.
ESP32_USB_BRIDGES: dict[tuple[int, int | None], str] = {
    (0x10C4, 0xEA60): "CP210x",
    (0x1A86, 0x7523): "CH340",
    (0x1A86, 0x55D4): "CH9102",
    (0x0403, 0x6001): "FTDI FT232R",
    (0x303A, None): "Espressif native USB",  # any PID: ESP32-S2/S3/C3/C6 USB-Serial-JTAG and CDC
}


@dataclass(frozen=True)
class SerialPort:
    device: str  # /dev/ttyUSB0, COM3, or a path given on the command line
    vid: int | None
    pid: int | None
    description: str
    serial_number: str | None = None

    @property
    def usb_id(self) -> str:
        if self.vid is None or self.pid is None:
            return "-"
        return f"{self.vid:04x}:{self.pid:04x}"

    @property
    def bridge(self) -> str | None:
        """The ESP32 USB bridge this port is, or None."""
        if self.vid is None:
            return None
        return ESP32_USB_BRIDGES.get((self.vid, self.pid)) or ESP32_USB_BRIDGES.get((self.vid, None))

    @property
    def is_esp32_class(self) -> bool:
        return self.bridge is not None


def _pyserial_comports() -> Iterable[object]:
    from serial.tools import list_ports

    return list_ports.comports()


def serial_ports(comports: Callable[[], Iterable[object]] = _pyserial_comports,
                 extra: Iterable[str] = ()) -> list[SerialPort]:
    """pyserial's list of ports (objects with .device, .vid, .pid, .description), plus `extra` paths
    that it does not list (a pseudo-terminal, a port behind an adapter pyserial cannot see)."""
    ports = []
    seen = set()
    for info in comports():
        device = str(getattr(info, "device", ""))
        if not device or device in seen:
            continue
        seen.add(device)
        description = getattr(info, "description", None) or getattr(info, "product", None) or ""
        if description == "n/a":
            description = ""
        ports.append(SerialPort(device, getattr(info, "vid", None), getattr(info, "pid", None),
                                str(description), getattr(info, "serial_number", None)))
    for device in extra:
        if device not in seen:
            seen.add(device)
            ports.append(SerialPort(device, None, None, "given on the command line"))
    return sorted(ports, key=lambda port: (not port.is_esp32_class, port.device))
