"""Fixtures for the fleet tests: settings on a tmp SQLite file, an engine, edge-like publishers."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fleet_testkit import EdgePublisher

from fleet.db import create_db_engine, init_db
from fleet.settings import Settings


@pytest.fixture
def fleet_settings(tmp_path: Path, fleet_database_url: str) -> Settings:
    """Ingest disabled; tests that need the broker switch it on with `model_copy`. Cookies without Secure."""
    return Settings(
        data_dir=tmp_path / "fleet",
        database_url=fleet_database_url,
        ingest_enabled=False,
        mqtt_client_id="fleet-test-" + uuid.uuid4().hex[:8],
        sweep_interval_s=0.2,
        session_cookie_secure=False,  # the tests speak plain http (TestClient, uvicorn on 127.0.0.1)
    )


@pytest.fixture
def engine(fleet_settings: Settings):
    engine = create_db_engine(fleet_settings.database_url)
    init_db(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def edge_factory() -> Iterator[Callable[[int], EdgePublisher]]:
    made: list[EdgePublisher] = []

    def make(port: int) -> EdgePublisher:
        publisher = EdgePublisher(port)
        made.append(publisher)
        return publisher

    yield make
    for publisher in made:
        publisher.close()
