"""GET / : the county dashboard."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from fleet.deps import NowDep, SessionDep, SettingsDep
from fleet.overview import center_summaries, list_devices
from fleet.web import labels

TEMPLATES_DIR = Path(__file__).parent / "templates"


def make_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
    templates.env.globals.update(
        role_label=labels.role_label,
        window_label=labels.window_label,
        status_label=labels.status_label,
        reason_label=labels.reason_label,
    )
    return templates


router = APIRouter()


@router.get("/", response_class=HTMLResponse)
def dashboard(request: Request, session: SessionDep, settings: SettingsDep, now: NowDep) -> HTMLResponse:
    centers = center_summaries(session, now, settings.tz)
    devices_by_center: dict[str, list] = {c["code"]: [] for c in centers}
    for device in list_devices(session):
        devices_by_center.setdefault(device["center_code"], []).append(device)
    ingest = request.app.state.ingest
    templates: Jinja2Templates = request.app.state.templates
    return templates.TemplateResponse(
        request,
        "dashboard.html",
        {
            "centers": centers,
            "devices_by_center": devices_by_center,
            "now": now,
            "today": now.astimezone(settings.tz).date(),
            "tz": settings.tz,
            "local_time": lambda value: labels.local_time(value, settings.tz),
            "refresh_s": settings.dashboard_refresh_s,
            "ingest_connected": ingest is None or ingest.connected,
            "ingest_enabled": ingest is not None,
            "broker_url": settings.broker_url,
        },
    )
