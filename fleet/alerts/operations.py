"""Wiring of alerts, follow-up cases, configuration and commands into the app.

    install_operations(app)   # in create_app: routers, the device page's section, the key box
    start_operations(app)     # in the lifespan: the notifier and the periodic jobs
    stop_operations(app)

The periodic jobs are plain functions of the time (`alert_job`, `case_job`,
`config_job`); tests call them directly with a fixed clock.
"""

from __future__ import annotations

import logging
from datetime import datetime

from fastapi import FastAPI
from sqlalchemy import Engine

from fleet.alerts.evaluate import run_alert_sweep
from fleet.alerts.notifications import notify_changes
from fleet.alerts.sweep import Job, Sweeper
from fleet.cases.contact import erase_callback_phones
from fleet.cases.service import open_missing_cases, overdue_cases
from fleet.centerconfig.service import center_config_job
from fleet.db import write_session
from fleet.devconfig.commands import time_out_commands
from fleet.devconfig.config import push_pending, recompute_all
from fleet.devconfig.keys import KeyBox
from fleet.devconfig.publisher import Publisher
from fleet.notify import Notification, Notifier
from fleet.overview import local_day
from fleet.province import ProvinceReporter
from fleet.registration.delivery import broker_accounts_job
from fleet.reports.monthly import MONTHLY_INTERVAL_S, monthly_report_job
from fleet.settings import Settings

log = logging.getLogger(__name__)

CASE_INTERVAL_S = 60.0
CONFIG_INTERVAL_S = 5.0
BROKER_ACCOUNTS_INTERVAL_S = 30.0  # changed files are published at once by the routes; this retries and repairs


def alert_job(engine: Engine, settings: Settings, notifier: Notifier | None, now: datetime) -> list:
    with write_session(engine) as session:
        changes = run_alert_sweep(session, now, settings)
    for change in changes:
        log.info("alert %s %s: %s %s", change.kind, change.key, change.message, change.reason)
    notify_changes(notifier, changes, now, settings.tz)
    return changes


def case_job(engine: Engine, settings: Settings, notifier: Notifier | None, now: datetime) -> int:
    """Open cases the ingest missed; page once for every case that became overdue."""
    with write_session(engine) as session:
        opened = open_missing_cases(session, now, settings.tz, settings.case_deadline_working_days)
        newly_overdue = [case for case in overdue_cases(session, local_day(now, settings.tz))
                         if not case.overdue_notified]
        for case in newly_overdue:
            case.overdue_notified = True
            session.add(case)
    if notifier is not None:
        for case in newly_overdue:
            notifier.notify(Notification(
                title=f"【回访工单超期】{case.center_code} {case.window}号窗口",
                lines=[f"工单 #{case.id}：{case.ticket} 差评（{case.score}分）", f"期限 {case.due_on}，尚未办结",
                       f"责任人：{case.assignee or '未分派'}"],
                center_code=case.center_code, event="case.overdue",
                data={"case_id": case.id, "due_on": str(case.due_on)}))
    return opened


def callback_phone_job(engine: Engine, settings: Settings, now: datetime) -> int:
    """Erase the callback phones of cases closed callback_phone_keep_days ago (fleet.cases.contact)."""
    with write_session(engine) as session:
        return erase_callback_phones(session, now, settings.callback_phone_keep_days)


def config_job(engine: Engine, settings: Settings, box: KeyBox, publisher: Publisher | None,
               now: datetime) -> None:
    """New devices get their inherited configuration; unpublished and drifted ones are (re)published;
    commands without acknowledgement time out."""
    with write_session(engine) as session:
        recompute_all(session, now)
    with write_session(engine) as session:
        push_pending(session, box, publisher, now, settings.config_repush_s)
    with write_session(engine) as session:
        for command_id in time_out_commands(session, now, settings.command_timeout_s):
            log.warning("command %s timed out", command_id)


def install_operations(app: FastAPI) -> None:
    from fleet import province_routes
    from fleet.alerts import routes as alert_routes
    from fleet.alerts.messages_en import install_english
    from fleet.cases import routes as case_routes
    from fleet.devconfig import routes as config_routes
    from fleet.reports import routes as report_routes

    settings: Settings = app.state.settings
    app.state.key_box = KeyBox.from_settings(settings)
    app.state.notifier = None
    app.state.operations = None
    for router in (alert_routes.api, alert_routes.pages, case_routes.api, case_routes.pages, config_routes.api,
                   config_routes.pages, report_routes.api, report_routes.pages, province_routes.api):
        app.include_router(router)
    sections = list(getattr(app.state, "device_sections", []))
    sections.append(("config_device_section.html", config_routes.device_section))
    app.state.device_sections = sections
    install_english()
    from fleet.centerconfig import routes as center_config_routes
    app.include_router(center_config_routes.api)
    app.include_router(center_config_routes.pages)


def start_operations(app: FastAPI) -> None:
    settings: Settings = app.state.settings
    engine: Engine = app.state.engine
    notifier = Notifier(settings.notify_webhooks, settings.notify_attempts, settings.notify_backoff_s).start() \
        if settings.notify_webhooks else None
    app.state.notifier = notifier

    def publisher() -> Publisher | None:
        return app.state.ingest

    jobs = [
        Job("alerts", settings.alert_sweep_interval_s, lambda now: alert_job(engine, settings, notifier, now)),
        Job("callback_phones", CASE_INTERVAL_S, lambda now: callback_phone_job(engine, settings, now)),
        Job("cases", CASE_INTERVAL_S, lambda now: case_job(engine, settings, notifier, now)),
        Job("config", min(CONFIG_INTERVAL_S, settings.command_timeout_s / 3),
            lambda now: config_job(engine, settings, app.state.key_box, publisher(), now)),
        Job("broker_accounts", BROKER_ACCOUNTS_INTERVAL_S,
            lambda now: broker_accounts_job(engine, publisher(), app.state.key_box, now, settings.config_repush_s)),
        # Centers' configurations: changes of profiles and items made elsewhere, retries, re-publishing.
        Job("center_config", CONFIG_INTERVAL_S,
            lambda now: center_config_job(engine, publisher(), app.state.key_box, now, settings.opening_hours,
                                          settings.config_repush_s)),
        Job("monthly_report", MONTHLY_INTERVAL_S, lambda now: monthly_report_job(engine, settings, now)),
    ]
    app.state.operations = Sweeper(jobs, app.state.clock).start()
    # Ratings with a 办件编号 to the province's 好差评 system, on a thread of its own: its HTTP calls wait.
    app.state.province = ProvinceReporter(engine, settings, app.state.clock).start() \
        if settings.province_endpoint else None


def stop_operations(app: FastAPI) -> None:
    if getattr(app.state, "province", None) is not None:
        app.state.province.stop()
        app.state.province = None
    if getattr(app.state, "operations", None) is not None:
        app.state.operations.stop()
        app.state.operations = None
    if getattr(app.state, "notifier", None) is not None:
        app.state.notifier.stop()
        app.state.notifier = None
