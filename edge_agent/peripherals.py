"""The center's peripherals besides the ticket printer: [peripherals.*] in the center's TOML.

Each adapter module validates its own section and reports every problem with its path;
`check_peripherals` runs them all from parse_config, and `build_peripherals` makes the adapters
of the sections present. The ticket printer keeps its own [printer] table (config.py), which may
also be written as [peripherals.printer].
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edge_agent.adapters.cameras import CameraConfig, WindowCameras, parse_cameras_config
from edge_agent.adapters.document_camera import (
    DocumentCamera,
    DocumentCameraConfig,
    parse_document_camera_config,
)
from edge_agent.adapters.id_card import IdCardReader, IdCardReaderConfig, parse_id_card_config
from edge_agent.adapters.scanner import BarcodeScanner, ScannerConfig, parse_scanner_config

SECTIONS = ("printer", "id_card", "scanner", "cameras", "document_camera")


@dataclass(frozen=True)
class Peripherals:
    id_card: IdCardReaderConfig | None = None
    scanner: ScannerConfig | None = None
    cameras: list[CameraConfig] = field(default_factory=list)
    document_camera: DocumentCameraConfig | None = None


def parse_peripherals(raw: dict, problems: list[str]) -> Peripherals:
    """The [peripherals.*] sections of a whole config file (`raw`), each problem added with its path."""
    section = raw.get("peripherals")
    if section is None:
        return Peripherals()
    if not isinstance(section, dict):
        problems.append("peripherals: must be a table")
        return Peripherals()
    for key in section:
        if key not in SECTIONS:
            problems.append(f"peripherals.{key}: unknown peripheral (known: {', '.join(SECTIONS)})")
    windows = {w.get("number") for w in raw["windows"] if isinstance(w, dict)} if "windows" in raw else None
    return Peripherals(
        id_card=parse_id_card_config(section["id_card"], "peripherals.id_card", problems)
        if "id_card" in section else None,
        scanner=parse_scanner_config(section["scanner"], "peripherals.scanner", problems)
        if "scanner" in section else None,
        cameras=parse_cameras_config(section["cameras"], "peripherals.cameras", problems, windows)
        if "cameras" in section else [],
        document_camera=parse_document_camera_config(section["document_camera"], "peripherals.document_camera",
                                                     problems) if "document_camera" in section else None,
    )


def check_peripherals(raw: dict, problems: list[str]) -> None:
    """The validation hook of parse_config."""
    parse_peripherals(raw, problems)


def build_peripherals(peripherals_raw: dict, data_dir: Path, on_card: Callable, on_code: Callable) -> list:
    """The adapters of the configured peripherals (the config was validated when it was loaded)."""
    problems: list[str] = []
    peripherals = parse_peripherals({"peripherals": peripherals_raw}, problems)
    adapters: list = []
    if peripherals.id_card is not None:
        adapters.append(IdCardReader(peripherals.id_card, data_dir, on_card))
    if peripherals.scanner is not None:
        adapters.append(BarcodeScanner(peripherals.scanner, on_code))
    if peripherals.cameras:
        adapters.append(WindowCameras(peripherals.cameras))
    if peripherals.document_camera is not None:
        adapters.append(DocumentCamera(peripherals.document_camera))
    return adapters
