"""create_app(settings): the one place where the fleet is wired together."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime

from fastapi import FastAPI

from fleet import api
from fleet.db import create_db_engine, init_db
from fleet.ingest import Ingest
from fleet.models import utcnow
from fleet.settings import Settings
from fleet.web import routes as web_routes

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
            app.state.ingest = Ingest(settings, engine, clock)
            app.state.ingest.start()
        try:
            yield
        finally:
            if app.state.ingest is not None:
                app.state.ingest.stop()
                app.state.ingest = None
            engine.dispose()

    app = FastAPI(title="县级设备管理平台 fleet", lifespan=lifespan)
    app.state.settings = settings
    app.state.engine = engine
    app.state.clock = clock
    app.state.ingest = None
    app.state.templates = web_routes.make_templates()
    app.include_router(api.router)
    app.include_router(web_routes.router)
    return app
