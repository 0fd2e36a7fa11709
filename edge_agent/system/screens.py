"""Chromium in kiosk mode on the center's screens: the kiosk's touch screen and the hall display.

A Pi 4 or 5 drives both from its two HDMI outputs. One X server (service-center-display.service, with
screen blanking and power saving off) spans them; each page is its own systemd unit
(service-center-screen@kiosk, @hall) running `service-center screen <page>`, which finds its output's
place on the X screen with xrandr and replaces itself with Chromium there, full screen. If Chromium
dies, systemd starts the unit again: the other screen goes on.

The center's TOML may say which output shows which page; without `[[screens]]` the kiosk takes the
first connected output and the hall display the second:

    [[screens]]
    page = "kiosk"        # kiosk | hall
    output = "HDMI-1"     # xrandr's name; "" or absent: by order, as above
    rotate = "left"       # normal | left | right | inverted (a portrait kiosk)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from edge_agent.config import CenterConfig

PAGES = ("kiosk", "hall")
ROTATIONS = ("normal", "left", "right", "inverted")
NO_SCREEN_EXIT = 3  # the unit does not restart on it (RestartPreventExitStatus): no output to show the page on

# `HDMI-1 connected primary 1920x1080+0+0 (normal left inverted right x axis y axis) 527mm x 296mm`
_CONNECTED = re.compile(r"^(?P<name>\S+) connected (?:primary )?(?:(?P<w>\d+)x(?P<h>\d+)\+(?P<x>\d+)\+(?P<y>\d+))?")


@dataclass(frozen=True)
class Output:
    name: str
    width: int | None = None  # None: connected but not switched on yet
    height: int | None = None
    x: int = 0
    y: int = 0


@dataclass(frozen=True)
class Screen:
    page: str
    output: str = ""  # "" = by order of the connected outputs
    rotate: str = "normal"


def connected_outputs(xrandr_query: str) -> list[Output]:
    """The connected outputs of `xrandr --query`, in its order (HDMI-1 before HDMI-2 on a Pi)."""
    found = []
    for line in xrandr_query.splitlines():
        match = _CONNECTED.match(line)
        if match is None:
            continue
        if match["w"] is None:
            found.append(Output(match["name"]))
        else:
            found.append(Output(match["name"], int(match["w"]), int(match["h"]), int(match["x"]), int(match["y"])))
    return found


def screens_of(raw: dict) -> tuple[list[Screen], list[str]]:
    """The [[screens]] of the center's raw TOML (defaults: both pages by output order), and every problem."""
    items = raw.get("screens")
    if items is None:
        return [Screen(page) for page in PAGES], []
    problems, screens = [], []
    if not isinstance(items, list):
        return [], ["screens: must be a list of tables ([[screens]])"]
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            problems.append(f"screens[{i}]: must be a table")
            continue
        page, rotate = item.get("page"), item.get("rotate", "normal")
        if page not in PAGES:
            problems.append(f"screens[{i}].page: must be one of {', '.join(PAGES)}, got {page!r}")
        elif any(screen.page == page for screen in screens):
            problems.append(f"screens[{i}].page: {page!r} is listed twice")
        if rotate not in ROTATIONS:
            problems.append(f"screens[{i}].rotate: must be one of {', '.join(ROTATIONS)}, got {rotate!r}")
        for key in item:
            if key not in ("page", "output", "rotate"):
                problems.append(f"screens[{i}].{key}: unknown key (page, output, rotate)")
        screens.append(Screen(str(page), str(item.get("output") or ""), str(rotate)))
    return screens, problems


def output_for(screen: Screen, screens: list[Screen], outputs: list[Output]) -> Output | None:
    """The output showing `screen`: the one it names, else the first connected one no other screen names."""
    if screen.output:
        return next((output for output in outputs if output.name == screen.output), None)
    named = {other.output for other in screens if other.output}
    free = [output for output in outputs if output.name not in named]
    unnamed = [other.page for other in screens if not other.output]
    position = unnamed.index(screen.page)
    return free[position] if position < len(free) else None


def page_url(config: CenterConfig, page: str) -> str:
    host = "127.0.0.1" if config.http_host in ("0.0.0.0", "::", "") else config.http_host
    return f"http://{host}:{config.http_port}/{page}"


def screens_plan(config: CenterConfig, screens: list[Screen]) -> list[dict]:
    """What the screen units need, written by `configure` as screens.json: they run as a user that cannot read
    the center's TOML (it holds passwords)."""
    return [{"page": screen.page, "output": screen.output, "rotate": screen.rotate,
             "url": page_url(config, screen.page)} for screen in screens]


def plan_screens(plan: list[dict]) -> list[Screen]:
    return [Screen(item["page"], item["output"], item["rotate"]) for item in plan]


def chromium_command(browser: str, url: str, output: Output, profile_dir: str) -> list[str]:
    """Chromium full screen on `output`, with nothing a resident could open: no bars, dialogs or restore bubble."""
    return [browser, "--kiosk", f"--window-position={output.x},{output.y}",
            f"--window-size={output.width or 1920},{output.height or 1080}", f"--user-data-dir={profile_dir}",
            "--no-first-run", "--noerrdialogs", "--disable-infobars", "--disable-session-crashed-bubble",
            "--disable-translate", "--disable-features=Translate", "--disable-pinch",
            "--overscroll-history-navigation=0", "--check-for-update-interval=31536000",
            "--autoplay-policy=no-user-gesture-required", url]
