"""create_app(settings): the one place where the fleet is wired together."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError

from fleet import api, metrics
from fleet.alerts.operations import install_operations, start_operations, stop_operations
from fleet.auth.deps import check_csrf
from fleet.auth.sessions import load_signing_key
from fleet.catalogue import routes as catalogue_routes
from fleet.centers import routes as center_routes
from fleet.db import create_db_engine, init_db
from fleet.ingest import Ingest
from fleet.models import utcnow
from fleet.registration import routes as registration_routes
from fleet.rollouts.routes import install_rollouts, start_rollouts, stop_rollouts
from fleet.settings import Settings
from fleet.web.setup import install_web

log = logging.getLogger(__name__)


def create_app(settings: Settings, *, clock: Callable[[], datetime] = utcnow) -> FastAPI:
    """The fleet web app. Creates the database engine and tables now; the MQTT ingest
    (when settings.ingest_enabled) starts and stops with the app's lifespan.

    `clock` returns the current aware datetime; tests pass a fixed one.
    """
    engine = create_db_engine(settings.database_url)
    init_db(engine)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.ingest_enabled:
            app.state.ingest = Ingest(settings, engine, clock, box=app.state.key_box)
            app.state.ingest.start()
        start_operations(app)
        start_rollouts(app)
        try:
            yield
        finally:
            stop_rollouts(app)
            stop_operations(app)
            if app.state.ingest is not None:
                app.state.ingest.stop()
                app.state.ingest = None
            engine.dispose()

    # check_csrf on every route: a cookie-authenticated POST/PUT/PATCH/DELETE needs the session's CSRF token.
    app = FastAPI(title="县级设备管理平台 fleet", lifespan=lifespan, dependencies=[Depends(check_csrf)])
    app.add_exception_handler(DataError, refuse_unholdable_value)
    app.state.settings = settings
    app.state.engine = engine
    app.state.clock = clock
    app.state.ingest = None
    secret = settings.cookie_signing_key.get_secret_value() if settings.cookie_signing_key else None
    app.state.signing_key = load_signing_key(engine, secret)
    app.include_router(api.router)
    app.include_router(api.health_router)
    app.include_router(metrics.router)
    install_web(app)
    install_operations(app)  # alerts, cases, configuration and commands
    install_rollouts(app)  # firmware bundles and rollouts in waves
    app.include_router(registration_routes.api)  # device registration, credential packs, broker files
    app.include_router(catalogue_routes.api)  # the catalogue of items (事项清单) and who handles which
    app.include_router(catalogue_routes.pages)
    app.include_router(center_routes.api)  # the center registry: profiles, division list, rollout coverage
    app.include_router(center_routes.pages)
    return app


async def refuse_unholdable_value(request: Request, exc: Exception) -> JSONResponse:
    """422 for a value from the request that the database refuses to store or compare.

    PostgreSQL refuses what SQLite takes (an id past its 32-bit INTEGER, a NUL character in text) only when
    the query runs, so route validation cannot know; without this it was a server error.
    """
    log.warning("%s %s: a value the database cannot hold: %s", request.method, request.url.path,
                getattr(exc, "orig", exc))
    return JSONResponse({"detail": "a value the database cannot hold"}, status_code=422)
