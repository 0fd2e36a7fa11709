"""Which centers cannot serve residents now: devices seen by the fleet plus the edge's own reasons."""

from fleet.overview import problem_text, serving_problems

ONLINE_CENTER = {"edge_online": True}


def device(role: str, window: int, status: str) -> dict:
    return {"role": role, "window": window, "status": status}


def test_the_edges_reasons_count_and_offline_devices_are_not_named_twice():
    devices = [device("queue_display", 3, "online"), device("rating_pad", 3, "offline")]
    problems = serving_problems(ONLINE_CENTER, devices, ["取号打印机缺纸", "3号窗口评价器离线"])
    assert [problem_text(p) for p in problems] == ["3号窗口评价器离线", "取号打印机缺纸"]


def test_a_center_whose_edge_is_offline_has_one_reason():
    problems = serving_problems({"edge_online": False}, [], ["取号打印机缺纸"])
    assert [problem_text(p) for p in problems] == ["边缘网关离线"]


def test_a_ready_center_has_no_problems():
    assert serving_problems(ONLINE_CENTER, [device("queue_display", 1, "online")], []) == []
