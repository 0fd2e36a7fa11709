"""The center's readiness roll-up: one yes/no and the reasons, in Chinese."""

from edge_agent.readiness import center_readiness

HEALTHY = {
    "center_broker": {"ok": True},
    "county_uplink": {"ok": False},  # the county link does not stop a center serving residents
    "printer": {"ok": True, "paper": "ok"},
    "id_card_reader": {"ok": True, "state": "ready"},
    "cameras": {"ok": False, "offline_windows": [1]},  # nor does a camera
}


def devices(*offline: tuple[str, int], windows=(1, 2)) -> list[dict]:
    return [{"device_id": f"dev-{role}-{w}", "role": role, "window": w, "online": int((role, w) not in offline)}
            for w in windows for role in ("queue_display", "rating_pad")]


def test_a_healthy_center_is_ready():
    assert center_readiness(HEALTHY, devices(), windows=[1, 2]) == (True, [])


def test_every_reason_is_listed():
    health = {**HEALTHY, "center_broker": {"ok": False}, "printer": {"ok": False, "paper": "out"},
              "id_card_reader": {"ok": False, "state": "offline"}}
    ok, reasons = center_readiness(health, devices(("rating_pad", 2)), windows=[1, 2, 3])
    assert ok is False
    assert reasons == ["中心消息服务器不可用", "取号打印机缺纸", "2号窗口评价器离线", "3号窗口排队显示屏离线",
                       "3号窗口评价器离线", "身份证读卡器离线"]


def test_printer_faults_and_warnings():
    broken = {**HEALTHY, "printer": {"ok": False, "paper": "unknown", "last_error": "cannot open"}}
    assert center_readiness(broken, devices()) == (False, ["取号打印机故障"])
    near_end = {**HEALTHY, "printer": {"ok": True, "paper": "near_end", "warning": "取号打印机纸将用尽"}}
    assert center_readiness(near_end, devices()) == (True, [])
    none = {**HEALTHY, "printer": {"ok": True, "state": "not configured"}}
    assert center_readiness(none, devices()) == (True, [])


def test_a_silent_card_reader_and_a_center_without_one():
    silent = {**HEALTHY, "id_card_reader": {"ok": False, "state": "not responding"}}
    assert center_readiness(silent, devices()) == (False, ["身份证读卡器无响应"])
    without = {k: v for k, v in HEALTHY.items() if k != "id_card_reader"}
    assert center_readiness(without, devices()) == (True, [])


def test_devices_seen_count_even_without_the_window_list():
    assert center_readiness(HEALTHY, devices(("queue_display", 1))) == (False, ["1号窗口排队显示屏离线"])


def test_a_full_or_failing_data_disk_stops_the_center_and_low_space_does_not():
    full = {**HEALTHY, "storage": {"ok": False, "state": "disk_full", "free_bytes": 0}}
    assert center_readiness(full, devices()) == (False, ["中心服务器存储空间已满，暂时无法取号"])
    failing = {**HEALTHY, "storage": {"ok": False, "state": "write_failed"}}
    assert center_readiness(failing, devices()) == (False, ["中心服务器数据库写入失败，暂时无法取号"])
    low = {**HEALTHY, "storage": {"ok": False, "state": "low_space", "free_bytes": 50 << 20}}
    assert center_readiness(low, devices()) == (True, [])  # it still serves; the county is warned
