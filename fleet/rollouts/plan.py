"""Rollout rules as plain functions: waves, the failure threshold, and what a device's report means.

No database and no clock of their own: `step(...)` takes the rollout, its targets and `now`, and says what to
do (start these devices, fail those that took too long, halt or complete the rollout). The service
(fleet/rollouts/service.py) applies the answer and sends the commands; tests call these with a driven clock.

Anchors: hawkBit's deployment groups (a group starts when the previous one has finished, an error threshold per
group stops the rollout), AWS IoT Jobs (a rollout rate as the number of devices updating at once, an abort
threshold), Mender (pause, resume, abort, roll back from the server).

Waves, in order; an empty wave is skipped:
  0 canary  the devices chosen by hand
  1 center  the rest of the canaries' centers
  2 town    the rest of the canaries' towns
  3 county  everything else in the rollout's scope
A wave starts only once every device of the one before has finished (succeeded or failed) within the threshold.

The failure threshold is per wave: a wave of n devices may have floor(n * failure_threshold_pct / 100)
failures; one more halts the rollout by itself (threshold 0: the first failure halts). Judging each wave on its
own size keeps a bad canary from hiding behind earlier successes, and keeps the verdict independent of how
many devices happened to finish first.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from protocol.identity import town_code

WAVE_CANARY = 0
WAVE_CENTER = 1
WAVE_TOWN = 2
WAVE_COUNTY = 3
WAVE_LABELS = {WAVE_CANARY: "试点设备", WAVE_CENTER: "试点中心", WAVE_TOWN: "试点乡镇", WAVE_COUNTY: "全县"}

# A device of a rollout.
PENDING = "pending"  # not started
UPDATING = "updating"  # told to update; no verdict yet
SUCCEEDED = "succeeded"  # reports the rollout's version running (kept after its health check)
FAILED = "failed"  # refused, failed, rolled itself back, or no verdict within the device time-out
ROLLING_BACK = "rolling_back"  # told to go back to the version it ran before the rollout
ROLLED_BACK = "rolled_back"  # reports that version running again
TARGET_STATES = (PENDING, UPDATING, SUCCEEDED, FAILED, ROLLING_BACK, ROLLED_BACK)
TARGET_LABELS = {PENDING: "待更新", UPDATING: "更新中", SUCCEEDED: "成功", FAILED: "失败", ROLLING_BACK: "回滚中",
                 ROLLED_BACK: "已回滚"}
FINISHED = (SUCCEEDED, FAILED)  # a verdict on the update

# A rollout.
RUNNING = "running"
PAUSED = "paused"  # by a person: no device is started; those updating finish
HALTED = "halted"  # by the failure threshold, the same as paused until someone resumes or rolls back
ABORTED = "aborted"  # for good: no device is started again
COMPLETED = "completed"  # every wave done within the threshold
ROLLOUT_ROLLING_BACK = "rolling_back"
ROLLOUT_ROLLED_BACK = "rolled_back"
ROLLOUT_LABELS = {RUNNING: "进行中", PAUSED: "已暂停", HALTED: "已自动停止", ABORTED: "已中止", COMPLETED: "已完成",
                  ROLLOUT_ROLLING_BACK: "回滚中", ROLLOUT_ROLLED_BACK: "已回滚"}
ACTIVE = (RUNNING, PAUSED, HALTED, ROLLOUT_ROLLING_BACK)  # a device is in at most one active rollout

# What a person may do in each state of a rollout.
PAUSE, RESUME, ABORT, ROLL_BACK = "pause", "resume", "abort", "rollback"
ALLOWED = {
    PAUSE: (RUNNING,),
    RESUME: (PAUSED, HALTED),
    ABORT: (RUNNING, PAUSED, HALTED, ROLLOUT_ROLLING_BACK),  # also a roll-back some device never finishes
    ROLL_BACK: (RUNNING, PAUSED, HALTED, ABORTED, COMPLETED),
}
ACTION_LABELS = {PAUSE: "暂停", RESUME: "继续", ABORT: "中止", ROLL_BACK: "回滚"}

# Why a device failed, when the fleet decides it (the board's own reasons are passed on as it words them).
REASON_TIMEOUT = "timeout"
REASON_REFUSED = "refused"


class RolloutRuleError(ValueError):
    """A request the rules refuse (an action not allowed in this state, no devices ...), with the reason."""


@dataclass(frozen=True)
class DeviceRef:
    """A device a rollout may reach: its id and the center it belongs to."""

    device_id: str
    center_code: str


@dataclass(frozen=True)
class Policy:
    """How fast and how carefully a rollout goes."""

    failure_threshold_pct: int = 0  # failures a wave may have, in percent of its devices (rounded down)
    max_in_flight: int = 10  # devices updating at once (the rollout rate)
    device_timeout_s: float = 900.0  # from the first command to a verdict: download, swap, reboot, health check


@dataclass
class TargetView:
    """What the rules need of one device of a rollout."""

    device_id: str
    wave: int
    state: str = PENDING
    started_at: datetime | None = None  # when it was told to update (or to roll back)


@dataclass
class Step:
    """What to do now: devices to start, devices that timed out, the rollout's new state (None: unchanged)."""

    start: list[str] = field(default_factory=list)
    timed_out: list[str] = field(default_factory=list)
    status: str | None = None
    reason: str | None = None


def plan_waves(devices: Iterable[DeviceRef], canary: Sequence[str]) -> dict[str, int]:
    """Device id -> wave for every device of the rollout. The canaries must be among `devices`."""
    by_id = {d.device_id: d for d in devices}
    missing = [device_id for device_id in canary if device_id not in by_id]
    if missing:
        raise RolloutRuleError(f"canary devices not in the rollout: {', '.join(missing)}")
    if not canary:
        raise RolloutRuleError("a rollout needs at least one canary device")
    centers = {by_id[device_id].center_code for device_id in canary}
    towns = {town_code(code) for code in centers}
    waves = {}
    for device_id, device in by_id.items():
        if device_id in canary:
            waves[device_id] = WAVE_CANARY
        elif device.center_code in centers:
            waves[device_id] = WAVE_CENTER
        elif town_code(device.center_code) in towns:
            waves[device_id] = WAVE_TOWN
        else:
            waves[device_id] = WAVE_COUNTY
    return waves


def failures_allowed(wave_size: int, threshold_pct: int) -> int:
    """How many devices of a wave of `wave_size` may fail before the rollout halts."""
    return wave_size * threshold_pct // 100


def current_wave(targets: Sequence[TargetView]) -> int | None:
    """The first wave with a device not finished (None: every wave has finished)."""
    open_waves = [t.wave for t in targets if t.state not in FINISHED]
    return min(open_waves) if open_waves else None


def over_threshold(targets: Sequence[TargetView], wave: int, policy: Policy) -> bool:
    in_wave = [t for t in targets if t.wave == wave]
    failed = sum(1 for t in in_wave if t.state == FAILED)
    return failed > failures_allowed(len(in_wave), policy.failure_threshold_pct)


def step(status: str, targets: Sequence[TargetView], policy: Policy, now: datetime) -> Step:
    """What the rollout does at `now`. Time-outs are judged in every state (a device told to update is still
    waited for while paused); devices are started only while running, within the current wave, at most
    `max_in_flight` updating at once; a wave over its failure threshold halts the rollout."""
    result = Step()
    limit = timedelta(seconds=policy.device_timeout_s)
    for target in targets:
        if target.state == UPDATING and target.started_at is not None and now - target.started_at >= limit:
            result.timed_out.append(target.device_id)
    if status != RUNNING:
        return result
    # Judge on the states as they will be once the time-outs are applied.
    judged = [TargetView(t.device_id, t.wave, FAILED if t.device_id in result.timed_out else t.state,
                         t.started_at) for t in targets]
    failed_waves = sorted({t.wave for t in judged if t.state == FAILED})
    for wave in failed_waves:
        if over_threshold(judged, wave, policy):
            result.status = HALTED
            result.reason = f"wave {wave} over its failure threshold ({policy.failure_threshold_pct}%)"
            return result
    wave = current_wave(judged)
    if wave is None:
        result.status = COMPLETED
        return result
    in_flight = sum(1 for t in judged if t.state == UPDATING)
    room = max(0, policy.max_in_flight - in_flight)
    result.start = [t.device_id for t in judged if t.wave == wave and t.state == PENDING][:room]
    return result


def rollback_step(targets: Sequence[TargetView], can_go_back: Collection[str]) -> tuple[list[str], bool]:
    """Rolling back: the devices to send back to their previous version (those that took the new one or may
    have: succeeded or still updating, and that have a previous version the fleet holds a bundle of:
    `can_go_back`), and whether the roll-back is complete (nothing left to send, no device on its way back).
    A device that cannot go back stays where it is; it does not keep the roll-back open for ever."""
    to_send = [t.device_id for t in targets if t.state in (SUCCEEDED, UPDATING) and t.device_id in can_go_back]
    done = not to_send and all(t.state != ROLLING_BACK for t in targets)
    return to_send, done


def check_action(action: str, status: str) -> None:
    """Raises RolloutRuleError unless a person may `action` a rollout in `status`."""
    if action not in ALLOWED:
        raise RolloutRuleError(f"unknown action {action!r}")
    if status not in ALLOWED[action]:
        raise RolloutRuleError(f"cannot {action} a rollout that is {status}")


@dataclass(frozen=True)
class BoardReport:
    """What a board says of its firmware (firmware_status): where it is, the version running, the version it
    is going to (target), the one staged, the last one that failed and why."""

    state: str | None = None  # protocol.messages FW_*: idle, downloading, staged, trying, confirmed, failed, refused
    running: str | None = None
    target: str | None = None
    staged: str | None = None
    failed: str | None = None
    error: str | None = None


SETTLED = ("idle", "confirmed")  # FW_IDLE, FW_CONFIRMED: what runs is kept (a `trying` set may still go back)
GAVE_UP = ("failed", "refused")  # FW_FAILED, FW_REFUSED: the previous files run, `error` says why


def judge_report(state: str, target_version: str, previous_version: str | None,
                 report: BoardReport) -> tuple[str, str | None]:
    """A device's new state in its rollout after a report, with the reason of a failure.

    Updating: the target version running and kept (idle or confirmed: a board still `trying` it may yet go
    back) is success; the board giving up on the target version (refused, bad signature, failed download,
    crashed at boot and went back by itself) is failure. Rolling back: the previous version running and kept.
    """
    settled = report.state in SETTLED
    if state == UPDATING:
        names_target = target_version in (report.failed, report.target)
        if report.state in GAVE_UP and names_target and report.running != target_version:
            return FAILED, report.error or report.state
        if report.state == "refused" and report.target is None and report.running != target_version:
            # A refused order names nothing (nothing in it was trusted): it is the order the device was told
            # last. The caller passes only a refusal that is news, not the retained one delivered again.
            return FAILED, report.error or report.state
        if settled and report.running == target_version:
            return SUCCEEDED, None
    elif state == ROLLING_BACK:
        if settled and previous_version is not None and report.running == previous_version:
            return ROLLED_BACK, None
    return state, None


def counts(states: Iterable[str]) -> dict[str, int]:
    """How many devices of a rollout are in each state (every state present, 0 included)."""
    tally = dict.fromkeys(TARGET_STATES, 0)
    for state in states:
        tally[state] = tally.get(state, 0) + 1
    return tally
