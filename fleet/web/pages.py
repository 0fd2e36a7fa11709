"""The dashboard pages: 总览 (overview), a center, a device, 审计日志 (audit log).

Every page filters by the user's scope: a center or device outside it is 404.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from sqlmodel import Session

from fleet import audit
from fleet.auth.deps import CurrentUserDep, ensure_visible
from fleet.auth.principal import CurrentUser
from fleet.center_view import center_today
from fleet.centers.names import clean_query, name_lookup
from fleet.deps import NowDep, SessionDep, SettingsDep
from fleet.health_history import device_history
from fleet.models import Device
from fleet.overview import center_summary, county_overview, list_devices
from fleet.web import audit_view, labels

router = APIRouter(include_in_schema=False)

# A section of the device page another module fills (configuration versions, commands ...):
# (template name, function(session, device dict, user) -> context for that template).
DeviceSection = tuple[str, Callable[[Session, dict[str, Any], CurrentUser], dict[str, Any]]]
HISTORY_WINDOW = timedelta(hours=24)
DIVISION_PREFIX = r"^[0-9]{1,12}$"  # the start of a division code: 4452, 445202101 ...
NOT_SERVING_SHOWN = 200  # centers named in the overview's "cannot serve" box; the card and towns count them all


def render(request: Request, name: str, context: dict[str, Any]) -> Response:
    """A page of the dashboard: the template with the shared context plus `local_time` and `tz`."""
    templates: Jinja2Templates = request.app.state.templates
    settings = request.app.state.settings
    base = {"local_time": lambda value: labels.local_time(value, settings.tz), "tz": settings.tz,
            "center_name": name_lookup(request.app.state.engine)}  # names beside codes on every page
    return templates.TemplateResponse(request, name, {**base, **context})


_render = render  # the name the alert, case and configuration pages import


@router.get("/", response_class=HTMLResponse)
def overview(request: Request, user: CurrentUserDep, session: SessionDep, settings: SettingsDep,
             now: NowDep, page: Annotated[int, Query(ge=1, le=100_000)] = 1,
             prefix: Annotated[str | None, Query(pattern=DIVISION_PREFIX)] = None,
             q: Annotated[str | None, Query(max_length=64)] = None,
             towns_page: Annotated[int, Query(ge=1, le=100_000)] = 1) -> Response:
    """Totals and the town roll-up of the user's scope (a page of towns at a time); the center table a page at
    a time (of `prefix`, and matching `q`: part of a code, a center's name or its town's)."""
    ingest = request.app.state.ingest
    return render(request, "overview.html", {
        **county_overview(session, now, settings.tz, user, prefix, page, q=clean_query(q), towns_page=towns_page),
        "not_serving_shown": NOT_SERVING_SHOWN,
        "now": now,
        "refresh_s": settings.dashboard_refresh_s,
        "ingest_connected": ingest is None or ingest.connected,
        "ingest_enabled": ingest is not None,
        "broker_url": settings.broker_url,
    })


@router.get("/centers/{code}", response_class=HTMLResponse)
def center_page(code: str, request: Request, user: CurrentUserDep, session: SessionDep, settings: SettingsDep,
                now: NowDep) -> Response:
    ensure_visible(user, code)
    summary = center_summary(session, code, now, settings.tz)
    if summary is None:
        raise HTTPException(status_code=404, detail=f"center {code} is unknown")
    devices = list_devices(session, code)
    windows = {d["window"] for d in devices if d["window"] is not None}
    return render(request, "center.html", {
        "center": summary, "devices": devices, "now": now, "refresh_s": settings.dashboard_refresh_s,
        **center_today(session, code, summary["day"], settings.tz, windows),
    })


@router.get("/devices/{device_id}", response_class=HTMLResponse)
def device_page(device_id: str, request: Request, user: CurrentUserDep, session: SessionDep,
                now: NowDep) -> Response:
    device = session.get(Device, device_id)
    if device is None or not user.can_see(device.center_code):
        raise HTTPException(status_code=404, detail=f"device {device_id} is unknown")
    listed = next(d for d in list_devices(session, device.center_code) if d["device_id"] == device_id)
    samples = device_history(session, device_id, since=now - HISTORY_WINDOW)
    series = {
        "t": [s.at.timestamp() for s in samples],
        "free_heap_kb": [None if s.free_heap is None else round(s.free_heap / 1024, 1) for s in samples],
        "rssi": [s.rssi for s in samples],
        "reconnects": [s.reconnects for s in samples],
    }
    sections = [(template, provide(session, listed, user))
                for template, provide in getattr(request.app.state, "device_sections", [])]
    return render(request, "device.html", {
        "device": listed, "samples": samples[-20:][::-1], "sample_count": len(samples),
        "health_json": json.dumps(series), "sections": sections, "now": now,
    })


@router.get("/audit", response_class=HTMLResponse)
def audit_page(request: Request, user: CurrentUserDep, session: SessionDep,
               page: Annotated[int, Query(ge=1, le=10_000)] = 1) -> Response:
    per_page = 100
    entries = audit.visible_entries(session, user, limit=per_page + 1, offset=(page - 1) * per_page)
    return render(request, "audit.html", {"entries": entries[:per_page], "page": page,
                                           "has_more": len(entries) > per_page,
                                           "action_label": audit_view.action_label,
                                           "detail_items": audit_view.detail_items,
                                           "via_labels": audit_view.VIA_LABELS, "system_user": audit_view.SYSTEM_USER})
