"""GET /metrics: Prometheus text format, for the county's monitoring.

Figures are read from the database at scrape time (a custom collector on a
registry of this app, so several apps in one process never share counters),
plus the ingest's message counts since start. Authentication as for the API
(a Bearer token for the Prometheus job); figures cover the token's scope, and
ingest counts are shown to county-wide users only.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import func
from sqlmodel import Session, col, select

from fleet.auth.deps import CurrentUserDep
from fleet.auth.principal import CurrentUser
from fleet.models import Center, Device
from fleet.overview import open_alerts_by_center
from fleet.presence import device_status

router = APIRouter(tags=["metrics"])


class MessageCounts:
    """Ingested MQTT messages by topic name and outcome (thread-safe: paho's thread counts, scrapes read)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()

    def add(self, topic: str, outcome: str) -> None:
        with self._lock:
            self._counts[(topic, outcome)] += 1

    def snapshot(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self._counts)


class FleetCollector:
    def __init__(self, session: Session, user: CurrentUser, messages: MessageCounts | None) -> None:
        self.session = session
        self.user = user
        self.messages = messages

    def collect(self) -> Iterator[Metric]:
        session, user = self.session, self.user
        devices = GaugeMetricFamily("fleet_devices", "Devices by role and status (online/offline/unknown/awaiting)",
                                    labels=["role", "status"])
        ever_seen = col(Device.last_seen).is_not(None)
        rows = session.exec(
            select(Device.role, Device.online, Center.edge_online, ever_seen, func.count())
            .join(Center, col(Center.code) == col(Device.center_code))
            .where(user.scope_clause(Device.center_code))
            .group_by(Device.role, Device.online, Center.edge_online, ever_seen)
        ).all()
        by_status: Counter[tuple[str, str]] = Counter()
        for role, online, edge_online, seen, n in rows:
            by_status[(role or "unknown", device_status(online, edge_online, bool(seen)))] += n
        for (role, status), n in sorted(by_status.items()):
            devices.add_metric([role, status], n)
        yield devices

        centers = GaugeMetricFamily("fleet_centers", "Service centers by edge agent state", labels=["edge"])
        edge_rows = session.exec(select(Center.edge_online, func.count()).where(user.scope_clause(Center.code))
                                 .group_by(Center.edge_online)).all()
        edge_counts = {bool(online): n for online, n in edge_rows}
        centers.add_metric(["online"], edge_counts.get(True, 0))
        centers.add_metric(["offline"], edge_counts.get(False, 0))
        yield centers

        alerts = open_alerts_by_center(session)
        if alerts is not None:
            yield GaugeMetricFamily("fleet_open_alerts", "Open alerts",
                                    value=sum(n for code, n in alerts.items() if user.can_see(code)))

        if self.messages is not None and user.division_prefix is None:
            ingested = CounterMetricFamily("fleet_ingest_messages", "MQTT messages ingested since start",
                                           labels=["topic", "outcome"])
            for (topic, outcome), n in sorted(self.messages.snapshot().items()):
                ingested.add_metric([topic, outcome], n)
            yield ingested


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
def metrics(request: Request, user: CurrentUserDep) -> Response:
    """Prometheus metrics of the user's scope."""
    ingest = request.app.state.ingest
    registry = CollectorRegistry(auto_describe=False)
    with Session(request.app.state.engine) as session:
        registry.register(FleetCollector(session, user, ingest.message_counts if ingest is not None else None))
        body = generate_latest(registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
