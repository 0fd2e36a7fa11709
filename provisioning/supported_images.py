"""Which MicroPython images provisioning accepts on a board, and which it flashes (firmware/image/image.json).

The production image (firmware/image/SERVICE_CENTER_ESP32) is MicroPython at a pinned release, built as
ESP32_GENERIC's SPIRAM variant with protocol/ and firmware/ frozen into flash; a board running it says so
in os.uname().machine. Until a release of it is listed in image.json, MicroPython's own ESP32_GENERIC
SPIRAM image of the same release is accepted too (a stock image: the firmware is then copied as .mpy
files). Anything else is refused before the board is touched: another release, another variant (a plain
ESP32 image, D2WD, OTA), and a board without PSRAM where the role needs it (its heap shows it: a
SPIRAM image on a WROOM module boots with a few hundred KB, on a WROVER with about 4 MB).

`--flash IMAGE.bin` writes only an image whose sha256 is a listed release, unless `--any-image`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from provisioning.errors import ProvisionError

IMAGE_FILE = Path(__file__).resolve().parents[1] / "firmware" / "image" / "image.json"


@dataclass(frozen=True)
class RunningImage:
    kind: str  # "production" (the firmware frozen in) or "stock" (the firmware copied as .mpy)
    machine: str

    @property
    def frozen(self) -> bool:
        return self.kind == "production"


def load(path: Path | None = None) -> dict:
    path = path if path is not None else IMAGE_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ProvisionError(f"cannot read the image definition {path}: {exc}") from None


def check_running_image(version: str, machine: str, heap_bytes: int, role: str, port: str,
                        spec: dict | None = None) -> RunningImage:
    """The image the board runs, if provisioning supports it for `role`; else a ProvisionError saying why."""
    spec = spec if spec is not None else load()
    pinned = spec["micropython"]["version"]
    flash_hint = ("flash the production image first (--flash IMAGE.bin; firmware/README.md, "
                  "\"The production image\")")
    if machine == spec["machine"]:
        kind = "production"
        if version != pinned:
            raise ProvisionError(f"the board on {port} runs the production image of MicroPython {version}; "
                                 f"this firmware is built for {pinned}: {flash_hint}")
    else:
        stock = [s for s in spec.get("stock_images", []) if s["machine"] == machine and s["version"] == version]
        if not stock:
            accepted = [spec["machine"]] + [s["machine"] for s in spec.get("stock_images", [])]
            raise ProvisionError(
                f"the board on {port} runs MicroPython {version} on \"{machine}\": not a supported image "
                f"(supported: MicroPython {pinned} on " + " or ".join(f"\"{m}\"" for m in accepted) + "): "
                + flash_hint)
        kind = "stock"
    needs = spec["roles"].get(role, {})
    minimum = spec["spiram_min_heap_bytes"]
    if needs.get("needs_spiram") and heap_bytes < minimum:
        raise ProvisionError(
            f"the board on {port} has a {heap_bytes // 1024} KB MicroPython heap: no PSRAM (a WROOM module, "
            f"or PSRAM not found at boot); a {role} needs the PSRAM of an ESP32-WROVER-E (at least "
            f"{minimum // 1024} KB of heap): {needs.get('why', '')}")
    return RunningImage(kind, machine)


def check_flash_image(sha256: str, name: str, any_image: bool, spec: dict | None = None) -> str:
    """What the record says about the image about to be flashed; refuses one that is not a listed release."""
    spec = spec if spec is not None else load()
    for release in spec.get("releases", []):
        if release.get("sha256") == sha256:
            return f"production image {spec['board']} {release.get('built', '')}".rstrip()
    if any_image:
        return "not a listed release (--any-image)"
    raise ProvisionError(
        f"{name} (sha256 {sha256[:16]}...) is not a release of the production image: provisioning flashes only "
        f"the images listed in firmware/image/image.json ({len(spec.get('releases', []))} so far), built by the "
        "pinned recipe of firmware/README.md; --any-image writes it anyway (a bench board, not one for a window)")
