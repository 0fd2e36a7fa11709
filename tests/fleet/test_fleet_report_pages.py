"""The report page (绩效报表) and the attendance page (考勤) in headless Chromium, on the seeded Monday of
tests/fleet/report_seed.py: the table's figures and the chart's data, the XLSX downloaded and read back with
openpyxl, and a town operator who sees only their town."""

from __future__ import annotations

import re
from pathlib import Path

import openpyxl
import pytest
from fleet_testkit import add_user, log_in
from live_fleet import serve
from report_seed import CENTER, DAY, END_OF_DAY, OTHER_CENTER, seed

from fleet.app import create_app
from fleet.reports import routes  # noqa: F401  (its English catalogue)
from fleet.web.i18n import CATALOGUES, EN

pytestmark = pytest.mark.browser

TEMPLATES = Path(__file__).resolve().parents[2] / "fleet" / "web" / "templates"
CJK = re.compile(r"[\u4e00-\u9fff]")
PERIOD = f"since={DAY.isoformat()}&until={DAY.isoformat()}"


@pytest.fixture
def fleet(fleet_settings):
    app = create_app(fleet_settings, clock=lambda: END_OF_DAY)
    seed(app.state.engine)
    add_user(app.state.engine)
    add_user(app.state.engine, "town-b", "town_operator", OTHER_CENTER[:9])
    with serve(app) as base:
        yield base


def cells(page, key: str) -> dict[str, str]:
    row = page.locator(f"#report tr[data-key='{key}']")
    return {name: row.locator(f"td.{name}").inner_text()
            for name in ("issued", "served", "wait_p50_min", "wait_p90_min", "handling_avg_min", "satisfaction_rate",
                         "coverage", "bad", "bad_cases", "closed_on_time", "attendance_hours", "empty_min")}


def download_xlsx(page, tmp_path: Path, name: str) -> list[tuple]:
    with page.expect_download() as download:
        page.click("#download-xlsx")
    target = tmp_path / name
    download.value.save_as(target)
    return list(openpyxl.load_workbook(target).active.iter_rows(values_only=True))


def test_the_report_page_shows_the_figures_draws_them_and_downloads_them(fleet, page, tmp_path) -> None:
    log_in(page, fleet)
    page.click("#nav a[data-nav='reports']")
    page.wait_for_url(re.compile(r".*/reports$"))
    assert page.locator("#report-first").inner_text() == "2026-11-01"  # 本月 by default: Nov 1 to today
    page.select_option("#report-by", "window")
    page.fill("#report-since", DAY.isoformat())
    page.click("#report-submit")
    page.wait_for_url(re.compile(r".*by=window.*"))
    assert (page.locator("#report-first").inner_text(), page.locator("#report-last").inner_text()) == (
        "2026-11-02", "2026-11-02")
    assert cells(page, f"{CENTER}/1") == {
        "issued": "—", "served": "2", "wait_p50_min": "10.0", "wait_p90_min": "20.0", "handling_avg_min": "15.0",
        "satisfaction_rate": "50.0", "coverage": "100.0", "bad": "1", "bad_cases": "1", "closed_on_time": "1",
        "attendance_hours": "7.0", "empty_min": "0"}
    assert cells(page, f"{CENTER}/3")["empty_min"] == "110"  # 王芳 late 50 minutes, away an hour
    assert cells(page, f"{CENTER}/2")["empty_min"] == "420"  # nobody all day

    page.wait_for_function("() => window.reportChart !== undefined")
    labels = page.evaluate("() => window.reportChart.getOption().xAxis[0].data")
    served = page.evaluate("() => window.reportChart.getOption().series[0].data")
    assert dict(zip(labels, served, strict=True))[f"{CENTER} · 1号窗口"] == 2
    box = page.locator("#report-chart svg").bounding_box()
    assert box["width"] > 300 and box["height"] > 200

    table = download_xlsx(page, tmp_path, "window.xlsx")
    assert table[0][0].startswith("绩效报表（按窗口） 2026-11-02 至 2026-11-02")
    assert table[1][:3] == ("窗口", "取号数", "办结数")
    shown = page.locator("#report tbody tr td.label").all_inner_texts()
    assert [row[0] for row in table[2:]] == shown
    window_1 = next(row for row in table[2:] if row[0] == f"{CENTER} · 1号窗口")
    assert window_1[1:] == (None, 2, 10.0, 20.0, 15.0, 50.0, 2, 100.0, 1, 1, 1, 7.0, 0)

    page.goto(f"{fleet}/reports?by=center&{PERIOD}")
    assert cells(page, CENTER) == {
        "issued": "4", "served": "3", "wait_p50_min": "10.0", "wait_p90_min": "20.0", "handling_avg_min": "20.0",
        "satisfaction_rate": "50.0", "coverage": "66.7", "bad": "1", "bad_cases": "1", "closed_on_time": "1",
        "attendance_hours": "14.2", "empty_min": "530"}
    assert "满意率 =（非常满意＋满意＋基本满意）÷ 评价数" in page.locator("#s-definition").inner_text()


def test_the_attendance_page_per_center_and_staff(fleet, page) -> None:
    log_in(page, fleet)
    page.click("#nav a[data-nav='attendance']")
    page.goto(f"{fleet}/attendance?{PERIOD}")
    center = page.locator(f"#attendance-centers tr[data-center='{CENTER}']")
    assert [center.locator(f"td.{name}").inner_text() for name in ("staff-count", "present", "late", "early",
                                                                   "empty")] == ["2", "14.2", "1", "0", "530"]
    wang = page.locator(f"#attendance-days tr[data-staff='1003'][data-day='{DAY.isoformat()}']")
    assert [wang.locator(f"td.{name}").inner_text() for name in ("staff-name", "first-in", "last-out", "present",
                                                                 "late", "early")] == [
        "王芳", "09:20", "17:30", "430", "50", "—"]
    page.click(f"#attendance-centers tr[data-center='{CENTER}'] a")
    page.wait_for_url(re.compile(rf".*center={CENTER}.*"))
    assert page.locator("#attendance-days tr[data-staff]").evaluate_all(
        "rows => rows.map(r => r.dataset.staff)") == ["1001", "1003"]


def test_a_town_operator_s_report_and_xlsx_cover_only_their_town(fleet, page, tmp_path) -> None:
    log_in(page, fleet, "town-b")
    page.goto(f"{fleet}/reports?by=center&{PERIOD}")
    assert page.locator("#report tbody tr").evaluate_all("rows => rows.map(r => r.dataset.key)") == [OTHER_CENTER]
    assert [row[0] for row in download_xlsx(page, tmp_path, "town.xlsx")[2:]] == [OTHER_CENTER]
    page.goto(f"{fleet}/reports?by=staff&{PERIOD}")
    assert page.locator("#report tbody tr td.label").all_inner_texts() == [f"{OTHER_CENTER} · 2001 刘洋"]
    page.goto(f"{fleet}/attendance?{PERIOD}")
    assert page.locator("#attendance-days tr[data-staff]").evaluate_all(
        "rows => rows.map(r => r.dataset.center)") == [OTHER_CENTER]


def test_the_report_pages_in_english(fleet, page) -> None:
    log_in(page, fleet)
    page.goto(f"{fleet}/reports?by=window&{PERIOD}&lang=en")
    assert page.locator("#nav a[data-nav='reports']").inner_text() == "Reports"
    for path in (f"/reports?by=window&{PERIOD}", f"/reports?by=staff&{PERIOD}", f"/attendance?{PERIOD}"):
        page.goto(fleet + path)
        page.wait_for_load_state("load")
        # Left in Chinese: the switch back (中文) and the names of people.
        text = page.evaluate("""() => { const body = document.body.cloneNode(true);
            body.querySelectorAll('#lang-switch, .staff-name, script').forEach(e => e.remove());
            return body.textContent.replace(/张敏|王芳|刘洋/g, ''); }""")
        assert not CJK.findall(text), f"{path}: {CJK.findall(text)}"


def test_every_message_of_the_report_pages_has_english() -> None:
    used: set[str] = set()
    for name in ("report.html", "attendance.html"):
        text = (TEMPLATES / name).read_text()
        used |= set(re.findall(r'_\(\s*"([^"]+)"', text)) | set(re.findall(r"_\(\s*'([^']+)'", text))
    from fleet.reports.figures import FIGURES, GROUP_LABELS
    from fleet.reports.periods import SHORTCUT_LABELS

    used |= {heading for _, heading in FIGURES} | set(GROUP_LABELS.values()) | set(SHORTCUT_LABELS.values())
    assert not sorted(text for text in used if CJK.search(text) and text not in CATALOGUES[EN])
