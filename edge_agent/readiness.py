"""Can this center serve residents right now? One answer county IT reads at a glance.

A pure function of the adapters' health and the devices the center has seen: the center broker
(displays and pads talk through it), the ticket printer and its paper, every window's queue display
and rating pad, the ID card reader (the green channel) and the spoken calls. Cameras, the scanner and
the document camera are reported in health but do not stop a center from serving. Reasons are in Chinese.
"""

from __future__ import annotations

from collections.abc import Iterable

DEVICE_LABELS = {"queue_display": "排队显示屏", "rating_pad": "评价器"}
NO_SOUND_CARD = ("no soundcards", "cannot find card", "audio open error", "unknown pcm")


# Why residents cannot hear the calls, as a code for the county (edge_health) and in Chinese for the screens.
VOICE_FAULTS = {"no_synthesizer": "叫号语音无法播报：未安装语音合成程序",
                "no_sound_card": "叫号喇叭无声：未找到声卡",
                "play_failed": "叫号喇叭无声：播放失败"}


def voice_fault(voice: dict | None) -> str:
    """The code of VOICE_FAULTS for the voice adapter's health ("" when the calls are heard, or voice is off)."""
    if not voice or not voice.get("enabled") or not voice.get("last_error"):
        return ""
    error = voice["last_error"].lower()
    if "not installed" in error:
        return "no_synthesizer"
    if any(marker in error for marker in NO_SOUND_CARD):
        return "no_sound_card"
    return "play_failed"


def voice_problem(voice: dict | None) -> str:
    """What staff and the hall operator are told when residents cannot hear the calls ("" when they can)."""
    return VOICE_FAULTS.get(voice_fault(voice), "")


def center_readiness(health: dict, devices: list[dict], windows: Iterable[int] = ()) -> tuple[bool, list[str]]:
    """(ok, reasons): ok when nothing stops the center serving; reasons say what does, in Chinese.

    `devices` are store.devices() rows (role, window, online); `windows` are the center's window
    numbers, so a window whose display or pad was never seen at all is reported too.
    """
    reasons: list[str] = []
    broker = health.get("center_broker")
    if broker is not None and not broker.get("ok"):
        reasons.append("中心消息服务器不可用")

    storage = health.get("storage")  # the data disk: nothing can be stored, so no ticket can be issued
    if storage is not None and storage.get("state") == "disk_full":
        reasons.append("中心服务器存储空间已满，暂时无法取号")
    elif storage is not None and storage.get("state") == "write_failed":
        reasons.append("中心服务器数据库写入失败，暂时无法取号")

    printer = health.get("printer")
    if printer is not None and printer.get("state") != "not configured":
        if printer.get("paper") == "out":
            reasons.append("取号打印机缺纸")
        elif not printer.get("ok"):
            reasons.append("取号打印机故障")

    online = {(d.get("role"), d.get("window")) for d in devices if d.get("online")}
    seen = {(d.get("role"), d.get("window")) for d in devices}
    all_windows = sorted(set(windows) | {window for role, window in seen if role in DEVICE_LABELS and window})
    for window in all_windows:
        for role, label in DEVICE_LABELS.items():
            if (role, window) not in online:
                reasons.append(f"{window}号窗口{label}离线")

    # Residents who cannot hear their number walk past it: the center serves worse, and says so.
    problem = voice_problem(health.get("voice"))
    if problem:
        reasons.append(problem)

    reader = health.get("id_card_reader")
    if reader is not None and not reader.get("ok") and reader.get("state") != "starting":
        state = reader.get("state")
        reasons.append("身份证读卡器无响应" if state == "not responding" else "身份证读卡器离线")
    return not reasons, reasons
