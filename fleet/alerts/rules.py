"""Alert rules: plain functions from facts to conditions, no database, no clock of their own.

A rule says what is wrong *now* (a `Condition`). Whether that becomes an alert
is the engine's business (fleet.alerts.engine): the center must be open, the
condition must have lasted `min_duration_s` within the current opening period,
and an alert already covering the subject is updated instead of a new one.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fleet.alerts.models import CRITICAL, WARNING
from fleet.presence import REASON_HEARTBEAT, REASON_WILL
from protocol.messages import (
    ROLE_QUEUE_DISPLAY,
    ROLE_RATING_PAD,
    TICKET_CALLED,
    TICKET_FINISHED,
    TICKET_ISSUED,
    TICKET_REQUEUED,
    TICKET_SKIPPED,
    TICKET_TRANSFERRED,
)

DEVICE_OFFLINE = "device_offline"
DEVICE_FLAPPING = "device_flapping"
EDGE_OFFLINE = "edge_offline"
PRINTER = "printer"
CAMERA_OFFLINE = "camera_offline"
COMPONENT = "component"
WAIT_OVER_TARGET = "wait_over_target"
WINDOW_PAUSED = "window_paused"
DEVICE_MISPLACED = "device_misplaced"
STORAGE = "storage"
LOW_COVERAGE = "low_rating_coverage"
EMPTY_WINDOW = "empty_window"
CLOCK = "clock_unsynced"

RULE_LABELS = {
    DEVICE_OFFLINE: "设备离线",
    DEVICE_FLAPPING: "设备频繁掉线",
    EDGE_OFFLINE: "边缘网关离线",
    PRINTER: "打印机",
    CAMERA_OFFLINE: "摄像头离线",
    COMPONENT: "外设故障",
    WAIT_OVER_TARGET: "等候超时",
    WINDOW_PAUSED: "窗口暂停服务",
    DEVICE_MISPLACED: "设备出现在其他中心",
    STORAGE: "存储故障",
    LOW_COVERAGE: "评价覆盖率低",
    EMPTY_WINDOW: "窗口空岗",
    CLOCK: "边缘网关时钟不准",
}

DROP_WILL = REASON_WILL
DROP_HEARTBEAT = REASON_HEARTBEAT
DROP_RECONNECT = "reconnect"  # a new session without its predecessor's end being seen
DROP_LABELS = {DROP_WILL: "连接断开", DROP_HEARTBEAT: "心跳超时", DROP_RECONNECT: "重新连接"}
MAX_DROPS_PER_MESSAGE = 20  # a session counter that jumped by thousands is a reflashed board, not flapping


def drops_revealed(before_online: bool, before_session: int | None, online: bool, session: int | None,
                   offline_reason: str | None) -> tuple[int, str]:
    """How many drops (and of which reason) a presence or heartbeat change of a device reveals.

    online -> offline is one drop (its reason); a newer session while we still thought the
    device online means it reconnected before its will reached us; sessions skipped while
    offline are connections we never saw, each of which ended.
    """
    count, reason = 0, DROP_RECONNECT
    if before_online and not online:
        count, reason = 1, offline_reason or DROP_RECONNECT
    elif before_session is not None and session is not None and session > before_session:
        count = session - before_session - (0 if before_online else 1)
    return max(0, min(count, MAX_DROPS_PER_MESSAGE)), reason

ROLE_NAMES = {ROLE_QUEUE_DISPLAY: "排队显示屏", ROLE_RATING_PAD: "评价器"}
COMPONENT_NAMES = {"center_broker": "中心消息服务", "county_uplink": "县平台上传", "printer": "打印机",
                   "id_card": "身份证读卡器", "scanner": "扫描仪", "document_camera": "高拍仪"}
# The edge's spoken calls (edge_agent/readiness.py VOICE_FAULTS): residents who cannot hear walk past their number.
VOICE_STATES = {"no_sound_card": "叫号喇叭无声：未找到声卡", "no_synthesizer": "叫号语音无法播报：未安装语音合成程序",
                "play_failed": "叫号喇叭无声：播放失败"}
PRINTER_STATES = {"paper_out": ("打印机缺纸", CRITICAL), "paper_near_end": ("打印机纸将用尽", WARNING),
                  "offline": ("打印机离线", CRITICAL)}
# The edge's data disk (edge_agent/storage.py): state -> (message, what it means for the center, severity).
STORAGE_STATES = {"disk_full": ("边缘网关存储空间已满", "无法取号、叫号和保存评价", CRITICAL),
                  "write_failed": ("边缘网关数据库写入失败", "无法取号、叫号和保存评价", CRITICAL),
                  "low_space": ("边缘网关存储空间不足", "尚可服务，空间用尽后将无法取号", WARNING)}
# The Pi under the edge (edge_health `host`, edge_agent/host_health.py): its data disk is nearly full from this
# share used on, before the edge's own low_space (an absolute [storage] min_free_mb) says so; its clock is
# wrong when it has been unsynced this long (a Pi just booted takes a minute or two to sync) or when the time
# it stamps its summary with is this far from the county's.
DISK_NEARLY_FULL_PERCENT = 90
CLOCK_UNSYNCED_ALERT_S = 15 * 60
CLOCK_OFFSET_ALERT_S = 120
WAITING_KINDS = (TICKET_ISSUED, TICKET_REQUEUED, TICKET_TRANSFERRED)
DONE_KINDS = (TICKET_CALLED, TICKET_FINISHED, TICKET_SKIPPED)


@dataclass(frozen=True)
class Condition:
    key: str  # the subject; one active alert per key
    rule: str
    center_code: str
    message: str  # Chinese
    reason: str  # Chinese
    severity: str = WARNING
    device_id: str | None = None
    window: int | None = None
    since: datetime | None = None  # when the condition began (None: unknown, counts as now)
    min_duration_s: float = 0.0  # how long it must last, within opening hours, to open an alert
    facts: dict[str, Any] = field(default_factory=dict, compare=False)
    any_hour: bool = False  # opens also while the center is closed (a security matter waits for no opening hours)


@dataclass(frozen=True)
class DeviceFacts:
    device_id: str
    center_code: str
    role: str | None
    window: int | None
    online: bool
    offline_reason: str | None
    last_seen: datetime | None


def _minutes(seconds: float) -> int:
    return int(seconds // 60)


def _device_name(device: DeviceFacts) -> str:
    name = ROLE_NAMES.get(device.role or "", "设备")
    return name if device.window is None else f"{device.window}号窗口{name}"


def device_conditions(device: DeviceFacts, drops: list[tuple[datetime, str]], now: datetime,
                      offline_after_s: float, flap_threshold: int, flap_window_s: float) -> list[Condition]:
    """Offline for a while, or flapping: one condition per device, under one key (flapping wins).

    `drops`: (when, why) of the device's connection losses, any age; those within the flap window count.
    """
    key = f"device:{device.device_id}"
    recent = sorted((at, why) for at, why in drops if at > now - timedelta(seconds=flap_window_s))
    offline_since = max((at for at, _ in drops), default=device.last_seen)
    if len(recent) >= flap_threshold:
        by_reason = Counter(why for _, why in recent)
        parts = "，".join(f"{DROP_LABELS.get(why, why)} {n} 次" for why, n in by_reason.most_common())
        state = "当前离线" if not device.online else "当前在线"
        window_text = f"{_minutes(flap_window_s)}分钟" if flap_window_s < 3600 else f"{flap_window_s / 3600:g}小时"
        return [Condition(key, DEVICE_FLAPPING, device.center_code, f"{_device_name(device)}频繁掉线",
                          f"{window_text}内掉线 {len(recent)} 次（{parts}），{state}", WARNING, device.device_id,
                          device.window, recent[0][0], 0.0, {"drops": len(recent), "by_reason": dict(by_reason)})]
    if device.online:
        return []
    why = DROP_LABELS.get(device.offline_reason or "", device.offline_reason or "原因未知")
    return [Condition(key, DEVICE_OFFLINE, device.center_code, f"{_device_name(device)}离线", f"离线（{why}）",
                      CRITICAL, device.device_id, device.window, offline_since, offline_after_s,
                      {"offline_reason": device.offline_reason})]


def edge_condition(center_code: str, edge_online: bool, offline_reason: str | None, last_seen: datetime | None,
                   offline_after_s: float) -> list[Condition]:
    if edge_online:
        return []
    why = DROP_LABELS.get(offline_reason or "", offline_reason or "连接断开")
    return [Condition(f"edge:{center_code}", EDGE_OFFLINE, center_code, "边缘网关离线",
                      f"整个中心与县平台失去联系（{why}），中心内设备状态未知", CRITICAL, since=last_seen,
                      min_duration_s=offline_after_s)]


def health_conditions(center_code: str, summary: dict[str, Any]) -> list[Condition]:
    """Printer, cameras and other peripherals from an edge_health summary (the `components` map)."""
    found = []
    components = summary.get("components") if isinstance(summary, dict) else None
    for name, part in sorted((components or {}).items()):
        if not isinstance(part, dict) or part.get("ok", True):
            continue
        state = str(part.get("state", ""))
        key = f"component:{center_code}:{name}"
        if name == "printer":
            message, severity = PRINTER_STATES.get(state, (f"打印机故障（{state}）", CRITICAL))
            found.append(Condition(key, PRINTER, center_code, message, "取号小票无法正常打印", severity,
                                   facts={"state": state}))
        elif name == STORAGE:
            found.append(_storage_condition(key, center_code, state, part))
        elif name == "voice":
            found.append(Condition(key, COMPONENT, center_code, VOICE_STATES.get(state, "叫号喇叭无声"),
                                   "群众听不到叫号：请检查喇叭、声卡和音量", WARNING,
                                   facts={"component": name, "state": state}))
        elif name == "firmware":  # the edge did not keep a bundle the fleet sent (edge_agent/firmware_cache.py)
            found.append(Condition(key, COMPONENT, center_code, "边缘网关拒收固件升级包",
                                   "本中心设备无法获取该升级包：请核对边缘网关密钥后重新发布", WARNING,
                                   facts={"component": name, "state": state, "problem": part.get("problem")}))
        elif name.startswith("camera-") and name[7:].isdigit():
            window = int(name[7:])
            found.append(Condition(key, CAMERA_OFFLINE, center_code, f"{window}号窗口摄像头离线",
                                   f"状态：{state or '未知'}", WARNING, window=window, facts={"state": state}))
        else:
            label = COMPONENT_NAMES.get(name, name)
            found.append(Condition(key, COMPONENT, center_code, f"{label}故障", f"状态：{state or '未知'}", WARNING,
                                   facts={"component": name, "state": state}))
    return found


def _storage_condition(key: str, center_code: str, state: str, part: dict[str, Any]) -> Condition:
    message, effect, severity = STORAGE_STATES.get(state, (f"边缘网关存储故障（{state}）", "可能无法取号", CRITICAL))
    details = [effect]
    free = part.get("free_bytes")
    if isinstance(free, int | float):
        details.append(f"剩余空间 {free / 1024 / 1024:.1f} MB")
    failures = part.get("write_failures")
    if isinstance(failures, int) and failures:
        details.append(f"写入失败 {failures} 次")
    # At any hour: a card that fills up at night stops the center when it opens; it can be freed before.
    return Condition(key, STORAGE, center_code, message, "；".join(details), severity,
                     facts={"state": state, "free_bytes": free, "write_failures": failures}, any_hour=True)


def host_conditions(center_code: str, summary: dict[str, Any], received_at: datetime) -> list[Condition]:
    """The Pi under the edge (the summary's `host`): a data disk nearly full, a clock out of sync.

    The disk nearly full is the storage alert (same key, same rule) raised earlier: while the edge's own
    `storage` component is not ok, that one speaks for the disk (health_conditions). The clock is judged two
    ways: the edge says it has been unsynced for CLOCK_UNSYNCED_ALERT_S (timedatectl, chrony or the kernel),
    or the summary's `ts` is more than CLOCK_OFFSET_ALERT_S from when the county received it (a clock that
    is wrong while its NTP daemon says nothing, or has none). Both at any hour: a clock wrong at night dates
    the morning's first tickets wrongly.
    """
    host = summary.get("host") if isinstance(summary, dict) else None
    if not isinstance(host, dict):
        return []  # an edge older than the host figures
    found = []
    components = summary.get("components")
    storage = components.get(STORAGE) if isinstance(components, dict) else None
    storage_ok = not isinstance(storage, dict) or storage.get("ok", True)
    total, free = host.get("disk_total_bytes"), host.get("disk_free_bytes")
    if storage_ok and isinstance(total, int | float) and isinstance(free, int | float) and total > 0:
        used = 100 * (total - free) / total
        if used >= DISK_NEARLY_FULL_PERCENT:
            found.append(Condition(f"component:{center_code}:{STORAGE}", STORAGE, center_code, "边缘网关存储空间将满",
                                   f"已用 {used:.0f}%，剩余 {free / 1024 ** 3:.1f} GB；"
                                   "用尽后将无法取号、叫号和保存评价",
                                   WARNING, facts={"state": "nearly_full", "used_percent": round(used, 1),
                                                   "free_bytes": free}, any_hour=True))
    ts = summary.get("ts")
    offset = ts - received_at.timestamp() if isinstance(ts, int | float) else 0.0
    unsynced_s = host.get("clock_unsynced_s")
    if abs(offset) > CLOCK_OFFSET_ALERT_S:
        ahead = "快" if offset > 0 else "慢"
        found.append(Condition(f"clock:{center_code}", CLOCK, center_code, "边缘网关时钟不准",
                               f"比县平台{ahead} {abs(offset) / 60:.0f} 分钟：取号、评价时间和今日统计将出错；"
                               "请检查网络时间同步（NTP）", WARNING, facts={"offset_s": round(offset)}, any_hour=True))
    elif host.get("clock") == "unsynced" and isinstance(unsynced_s, int | float):
        found.append(Condition(f"clock:{center_code}", CLOCK, center_code, "边缘网关时钟未同步",
                               f"已 {unsynced_s / 60:.0f} 分钟未与网络时间同步"
                               f"（{host.get('clock_source') or '未知'}）：时间可能逐渐不准；请检查网络时间同步（NTP）",
                               WARNING,
                               since=received_at - timedelta(seconds=unsynced_s),
                               min_duration_s=CLOCK_UNSYNCED_ALERT_S, facts={"unsynced_s": unsynced_s},
                               any_hour=True))
    return found


def paused_window_conditions(center_code: str, summary: dict[str, Any], paused_after_s: float) -> list[Condition]:
    """Windows paused (暂停服务) for a while, when the summary reports windows.

    Reported as an optional `windows` map of the edge_health summary:
    {"3": {"state": "paused", "since": 1767576000}} (not part of the contract yet; ignored when absent).
    """
    found = []
    windows = summary.get("windows") if isinstance(summary, dict) else None
    for number, info in sorted((windows or {}).items()):
        if not isinstance(info, dict) or info.get("state") != "paused" or not str(number).isdigit():
            continue
        since = info.get("since")
        started = datetime.fromtimestamp(since, UTC) if isinstance(since, int | float) else None
        found.append(Condition(f"paused:{center_code}:{int(number)}", WINDOW_PAUSED, center_code,
                               f"{int(number)}号窗口暂停服务", "开放时间内窗口暂停服务", WARNING, window=int(number),
                               since=started, min_duration_s=paused_after_s))
    return found


def empty_window_conditions(center_code: str, summary: dict[str, Any], empty_after_s: float) -> list[Condition]:
    """空岗: a window with nobody signed in (the summary's `windows` map, staff_no "", unstaffed_since) for
    `empty_after_s` of opening time (the engine counts from the later of the two: opening or the sign-out)."""
    found = []
    windows = summary.get("windows") if isinstance(summary, dict) else None
    for number, info in sorted((windows or {}).items()):
        if not isinstance(info, dict) or info.get("staff_no") or not str(number).isdigit():
            continue
        since = info.get("unstaffed_since")  # 0: never staffed (the engine counts from the opening)
        started = datetime.fromtimestamp(since, UTC) if isinstance(since, int | float) else None
        found.append(Condition(f"empty:{center_code}:{int(number)}", EMPTY_WINDOW, center_code,
                               f"{int(number)}号窗口空岗", "开放时间内无工作人员登录", WARNING, window=int(number),
                               since=started, min_duration_s=empty_after_s))
    return found


# A device's messages under another center keep its alert open this long after the last one.
MISPLACED_ALERT_S = 24 * 3600


@dataclass(frozen=True)
class MisplacedFacts:
    """Messages of a device that came under `center_code`, not its `home_center` (fleet.alerts.models)."""

    device_id: str
    center_code: str
    home_center: str
    role: str | None
    window: int | None
    count: int
    first_at: datetime
    last_at: datetime


def misplaced_conditions(reports: list[MisplacedFacts], now: datetime,
                         recent_s: float = MISPLACED_ALERT_S) -> list[Condition]:
    """A device heard under a center it does not belong to, lately: for its own center, at any hour.

    Someone on another center's network claims to be this device (a forged or copied identity), or it was
    moved there without being registered again: either way its messages there are dropped until it is.
    """
    found = []
    for report in sorted(reports, key=lambda r: (r.device_id, r.center_code)):
        if report.last_at <= now - timedelta(seconds=recent_s):
            continue
        device = DeviceFacts(report.device_id, report.home_center, report.role, report.window, True, None, None)
        found.append(Condition(
            f"misplaced:{report.device_id}:{report.center_code}", DEVICE_MISPLACED, report.home_center,
            f"{_device_name(device)}出现在其他中心",
            f"登记在本中心的设备 {report.device_id} 在中心 {report.center_code} 发出 {report.count} 条消息，已丢弃"
            "（身份被冒用，或设备被移走而未重新登记）", CRITICAL, report.device_id, report.window, report.first_at,
            0.0, {"center": report.center_code, "count": report.count}, any_hour=True))
    return found


@dataclass(frozen=True)
class TicketFact:
    ticket: str
    kind: str
    ts: float
    service_name: str | None = None


def waiting_tickets(events: list[TicketFact]) -> dict[str, float]:
    """Tickets still waiting to be called -> when they were issued (a transfer keeps the issue time)."""
    issued: dict[str, float] = {}
    waiting: dict[str, bool] = {}
    for event in sorted(events, key=lambda e: e.ts):
        if event.kind == TICKET_ISSUED:
            issued.setdefault(event.ticket, event.ts)
        if event.kind in WAITING_KINDS:
            waiting[event.ticket] = True
        elif event.kind in DONE_KINDS:
            waiting[event.ticket] = False
    return {ticket: issued[ticket] for ticket, still in waiting.items() if still and ticket in issued}


def wait_condition(center_code: str, events: list[TicketFact], now: datetime, target_s: float) -> list[Condition]:
    """Residents waiting longer than the service-level target (issued -> called), from today's ticket events."""
    overdue = {ticket: now.timestamp() - ts for ticket, ts in waiting_tickets(events).items()
               if now.timestamp() - ts > target_s}
    if not overdue:
        return []
    longest = max(overdue, key=lambda ticket: overdue[ticket])
    since = datetime.fromtimestamp(now.timestamp() - overdue[longest] + target_s, UTC)
    return [Condition(f"wait:{center_code}", WAIT_OVER_TARGET, center_code, "等候超时",
                      f"{len(overdue)} 人等候超过 {_minutes(target_s)} 分钟，最长 {longest} 已等 "
                      f"{_minutes(overdue[longest])} 分钟", WARNING, since=since,
                      facts={"tickets": sorted(overdue), "longest_s": int(overdue[longest])})]


def coverage_conditions(center_code: str, windows: list[dict[str, Any]], threshold_percent: float,
                        min_served: int) -> list[Condition]:
    """Windows whose rating coverage today is below the threshold, once they have served `min_served`.

    `windows`: fleet.coverage rows of one center grouped by window (key [center, window]).
    """
    found = []
    for row in windows:
        served, covered = row["served"], row["coverage"]
        if served < min_served or covered is None or covered >= threshold_percent:
            continue
        window = int(row["key"][1])
        reason = (f"今日办结 {served} 件，评价 {row['rated']} 件（{covered:g}%），低于 {threshold_percent:g}%；"
                  f"未评价 {row['timeout']}，工作人员跳过 {row['skipped']}，评价器无响应 {row['pad_offline']}")
        found.append(Condition(f"coverage:{center_code}:{window}", LOW_COVERAGE, center_code,
                               f"{window}号窗口评价覆盖率低", reason, WARNING, window=window,
                               facts={k: row[k] for k in ("served", "rated", "timeout", "skipped", "pad_offline",
                                                          "coverage")}))
    return found
