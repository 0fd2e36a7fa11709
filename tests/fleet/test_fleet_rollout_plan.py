"""Rollout rules with a driven clock: waves, the rate, time-outs, the failure threshold, reports, actions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fleet.rollouts import plan
from fleet.rollouts.plan import BoardReport, DeviceRef, Policy, TargetView

T0 = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)
CENTER = "445202101001"
SAME_TOWN = "445202101002"
OTHER_TOWN = "445202102001"


def devices() -> list[DeviceRef]:
    return [DeviceRef("dev-canary", CENTER), DeviceRef("dev-c2", CENTER), DeviceRef("dev-t1", SAME_TOWN),
            DeviceRef("dev-x1", OTHER_TOWN), DeviceRef("dev-x2", OTHER_TOWN)]


def targets(waves: dict[str, int]) -> list[TargetView]:
    return [TargetView(device_id, wave) for device_id, wave in waves.items()]


def apply(step: plan.Step, views: list[TargetView], now: datetime) -> None:
    """What the service does with a step: start devices, fail the late ones."""
    for view in views:
        if view.device_id in step.start:
            view.state, view.started_at = plan.UPDATING, now
        if view.device_id in step.timed_out:
            view.state = plan.FAILED


def set_state(views: list[TargetView], device_id: str, state: str) -> None:
    next(v for v in views if v.device_id == device_id).state = state


def test_waves_go_canary_center_town_county() -> None:
    waves = plan.plan_waves(devices(), ["dev-canary"])
    assert waves == {"dev-canary": plan.WAVE_CANARY, "dev-c2": plan.WAVE_CENTER, "dev-t1": plan.WAVE_TOWN,
                     "dev-x1": plan.WAVE_COUNTY, "dev-x2": plan.WAVE_COUNTY}
    with pytest.raises(plan.RolloutRuleError, match="dev-nope"):
        plan.plan_waves(devices(), ["dev-nope"])
    with pytest.raises(plan.RolloutRuleError):
        plan.plan_waves(devices(), [])


def test_a_wave_starts_only_when_the_one_before_has_finished() -> None:
    views = targets(plan.plan_waves(devices(), ["dev-canary"]))
    policy = Policy(failure_threshold_pct=50, max_in_flight=10)
    first = plan.step(plan.RUNNING, views, policy, T0)
    assert first.start == ["dev-canary"] and first.status is None
    apply(first, views, T0)
    assert plan.step(plan.RUNNING, views, policy, T0 + timedelta(seconds=5)).start == []  # canary not done
    set_state(views, "dev-canary", plan.SUCCEEDED)
    assert plan.step(plan.RUNNING, views, policy, T0).start == ["dev-c2"]
    apply(plan.step(plan.RUNNING, views, policy, T0), views, T0)
    set_state(views, "dev-c2", plan.SUCCEEDED)
    assert plan.step(plan.RUNNING, views, policy, T0).start == ["dev-t1"]
    apply(plan.step(plan.RUNNING, views, policy, T0), views, T0)
    set_state(views, "dev-t1", plan.SUCCEEDED)
    county = plan.step(plan.RUNNING, views, policy, T0)
    assert county.start == ["dev-x1", "dev-x2"]
    apply(county, views, T0)
    set_state(views, "dev-x1", plan.SUCCEEDED)
    set_state(views, "dev-x2", plan.FAILED)  # 1 of 2 within 50 %
    assert plan.step(plan.RUNNING, views, policy, T0).status == plan.COMPLETED


def test_no_more_than_max_in_flight_update_at_once() -> None:
    many = [DeviceRef(f"dev-{n:02d}", OTHER_TOWN) for n in range(7)]
    views = targets(plan.plan_waves([DeviceRef("dev-canary", CENTER), *many], ["dev-canary"]))
    set_state(views, "dev-canary", plan.SUCCEEDED)
    policy = Policy(max_in_flight=3)
    first = plan.step(plan.RUNNING, views, policy, T0)
    assert first.start == ["dev-00", "dev-01", "dev-02"]
    apply(first, views, T0)
    assert plan.step(plan.RUNNING, views, policy, T0).start == []
    set_state(views, "dev-01", plan.SUCCEEDED)
    assert plan.step(plan.RUNNING, views, policy, T0).start == ["dev-03"]


def test_the_first_canary_failure_halts_at_threshold_zero() -> None:
    views = targets(plan.plan_waves(devices(), ["dev-canary"]))
    apply(plan.step(plan.RUNNING, views, Policy(), T0), views, T0)
    set_state(views, "dev-canary", plan.FAILED)
    halted = plan.step(plan.RUNNING, views, Policy(), T0)
    assert halted.status == plan.HALTED and halted.start == []
    assert "wave 0" in (halted.reason or "")


def test_a_wave_may_fail_up_to_its_threshold_and_no_further() -> None:
    assert plan.failures_allowed(10, 20) == 2
    assert plan.failures_allowed(4, 20) == 0  # rounded down: 0.8 devices is none
    many = [DeviceRef(f"dev-{n:02d}", OTHER_TOWN) for n in range(10)]
    views = targets(plan.plan_waves([DeviceRef("dev-canary", CENTER), *many], ["dev-canary"]))
    set_state(views, "dev-canary", plan.SUCCEEDED)
    policy = Policy(failure_threshold_pct=20, max_in_flight=10)
    apply(plan.step(plan.RUNNING, views, policy, T0), views, T0)
    set_state(views, "dev-00", plan.FAILED)
    set_state(views, "dev-01", plan.FAILED)
    assert plan.step(plan.RUNNING, views, policy, T0).status is None
    set_state(views, "dev-02", plan.FAILED)
    assert plan.step(plan.RUNNING, views, policy, T0).status == plan.HALTED


def test_a_device_without_verdict_times_out_on_the_driven_clock_and_counts_as_failed() -> None:
    views = targets(plan.plan_waves(devices(), ["dev-canary"]))
    policy = Policy(device_timeout_s=600)
    apply(plan.step(plan.RUNNING, views, policy, T0), views, T0)
    assert plan.step(plan.RUNNING, views, policy, T0 + timedelta(seconds=599)).timed_out == []
    late = plan.step(plan.RUNNING, views, policy, T0 + timedelta(seconds=600))
    assert late.timed_out == ["dev-canary"] and late.status == plan.HALTED
    # Paused, a device told to update is still waited for, and still times out; nothing new starts.
    views = targets(plan.plan_waves(devices(), ["dev-canary"]))
    apply(plan.step(plan.RUNNING, views, policy, T0), views, T0)
    paused = plan.step(plan.PAUSED, views, policy, T0 + timedelta(seconds=601))
    assert paused.timed_out == ["dev-canary"] and paused.start == [] and paused.status is None


def test_nothing_starts_unless_running() -> None:
    views = targets(plan.plan_waves(devices(), ["dev-canary"]))
    for status in (plan.PAUSED, plan.HALTED, plan.ABORTED, plan.COMPLETED):
        assert plan.step(status, views, Policy(), T0).start == []


def test_reports_decide_success_failure_and_rollback() -> None:
    def judge(state: str, report: BoardReport) -> tuple[str, str | None]:
        return plan.judge_report(state, "1.1", "1.0", report)

    assert judge(plan.UPDATING, BoardReport("confirmed", running="1.1", target="1.1")) == (plan.SUCCEEDED, None)
    assert judge(plan.UPDATING, BoardReport("idle", running="1.1")) == (plan.SUCCEEDED, None)
    # Booted the new files but not yet kept: it may still go back.
    assert judge(plan.UPDATING, BoardReport("trying", running="1.1", target="1.1")) == (plan.UPDATING, None)
    # Crashed at boot: the board went back to 1.0 and says why 1.1 failed.
    crashed = BoardReport("failed", running="1.0", target="1.1", failed="1.1", error="boot_crash")
    assert judge(plan.UPDATING, crashed) == (plan.FAILED, "boot_crash")
    refused = BoardReport("refused", running="1.0", target="1.1", error="bad signature")
    assert judge(plan.UPDATING, refused) == (plan.FAILED, "bad signature")
    # A refused order names nothing (nothing in it was trusted): it is the one the device was told last.
    unnamed = BoardReport("refused", running="1.0", error="signature does not verify")
    assert judge(plan.UPDATING, unnamed) == (plan.FAILED, "signature does not verify")
    assert judge(plan.ROLLING_BACK, unnamed) == (plan.ROLLING_BACK, None)
    # Downloading or staged, not yet swapped: no verdict.
    assert judge(plan.UPDATING, BoardReport("staged", running="1.0", target="1.1", staged="1.1")) == \
        (plan.UPDATING, None)
    # An old failure of another version is no verdict on this one.
    assert judge(plan.UPDATING, BoardReport("failed", running="1.0", target="0.9", failed="0.9")) == \
        (plan.UPDATING, None)
    assert judge(plan.ROLLING_BACK, BoardReport("confirmed", running="1.0", target="1.0")) == \
        (plan.ROLLED_BACK, None)
    assert judge(plan.SUCCEEDED, BoardReport("idle", running="1.0")) == (plan.SUCCEEDED, None)


def test_rollback_sends_back_what_took_or_may_take_the_new_version() -> None:
    views = [TargetView("a", 0, plan.SUCCEEDED), TargetView("b", 1, plan.UPDATING), TargetView("c", 1, plan.FAILED),
             TargetView("d", 2, plan.PENDING)]
    assert plan.rollback_step(views, {"a", "b", "c", "d"}) == (["a", "b"], False)
    # b's previous version has no bundle in the fleet: it stays, and does not hold the roll-back open.
    assert plan.rollback_step(views, {"a"}) == (["a"], False)
    views = [TargetView("a", 0, plan.ROLLING_BACK), TargetView("c", 1, plan.FAILED)]
    assert plan.rollback_step(views, {"a"}) == ([], False)
    views = [TargetView("a", 0, plan.ROLLED_BACK), TargetView("b", 1, plan.SUCCEEDED)]
    assert plan.rollback_step(views, set()) == ([], True)


def test_actions_allowed_by_state() -> None:
    plan.check_action(plan.PAUSE, plan.RUNNING)
    plan.check_action(plan.RESUME, plan.HALTED)
    plan.check_action(plan.ROLL_BACK, plan.COMPLETED)
    plan.check_action(plan.ABORT, plan.ROLLOUT_ROLLING_BACK)  # a roll-back some device never finishes
    for action, status in ((plan.PAUSE, plan.PAUSED), (plan.RESUME, plan.RUNNING), (plan.ABORT, plan.COMPLETED),
                           (plan.ROLL_BACK, plan.ROLLOUT_ROLLED_BACK), ("explode", plan.RUNNING)):
        with pytest.raises(plan.RolloutRuleError):
            plan.check_action(action, status)
    assert plan.counts([plan.PENDING, plan.FAILED, plan.FAILED])[plan.FAILED] == 2
