"""Shared fixtures: real Mosquitto brokers on free loopback ports."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.mosquitto import MosquittoBroker

POSTGRES = os.environ.get("FLEET_TEST_POSTGRES") == "1"  # set by `make test-postgres` and `make test-fleet-postgres`

CENTER_CODE = "445202101001"  # a sample village center: county 445202, town 101, village 001


# Markers. CI runs the suite on SQLite (`make test`), then again only the tests whose fleet database
# FLEET_TEST_POSTGRES switches to PostgreSQL (`make test-fleet-postgres`, `-m fleet_database`): a test that
# keeps SQLite, or has no fleet database, would only repeat itself there.
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "fleet_database: the test's fleet runs on the database FLEET_TEST_POSTGRES picks (added to every "
        "test using the fleet_database_url fixture; `make test-fleet-postgres` runs exactly these)")
    config.addinivalue_line(
        "markers", "sqlite_only(reason): the test keeps its fleet on a SQLite file of its own even under "
        "FLEET_TEST_POSTGRES=1, for the reason given, so `make test-fleet-postgres` leaves it out")


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        follows_the_switch = "fleet_database_url" in getattr(item, "fixturenames", ())
        sqlite_only = item.get_closest_marker("sqlite_only")
        if sqlite_only is not None:
            if not (sqlite_only.args or sqlite_only.kwargs.get("reason")):
                raise pytest.UsageError(f"{item.nodeid}: sqlite_only needs the reason the test stays on SQLite")
            if follows_the_switch:
                raise pytest.UsageError(f"{item.nodeid}: marked sqlite_only but uses fleet_database_url")
        if follows_the_switch:
            item.add_marker(pytest.mark.fleet_database)


@pytest.fixture
def broker_factory(tmp_path: Path) -> Iterator:
    started: list[MosquittoBroker] = []

    def start(name: str = "broker", **kwargs) -> MosquittoBroker:
        broker = MosquittoBroker(tmp_path / "brokers", name, **kwargs).start()
        started.append(broker)
        return broker

    yield start
    for broker in started:
        broker.stop()


@pytest.fixture
def center_broker(broker_factory) -> MosquittoBroker:
    return broker_factory("center")


@pytest.fixture
def county_broker(broker_factory) -> MosquittoBroker:
    return broker_factory("county")


CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def chromium_env() -> dict[str, str]:
    """The browser's environment: ours, except that under libfaketime (`make test-clock`) Chromium's monotonic
    clock is faked too. Python needs it left real (tests/support/faketime/sitecustomize.py says why); Chromium
    then hangs in its own timed waits."""
    return {name: value for name, value in os.environ.items() if name != "FAKETIME_DONT_FAKE_MONOTONIC"}


@pytest.fixture(scope="session")
def chromium():
    """Real headless Chromium (Debian's), driven by Playwright; never a downloaded browser."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS,
                                             env=chromium_env())
        yield browser
        browser.close()


@pytest.fixture
def page(chromium, tmp_path: Path):
    context = chromium.new_context(locale="zh-CN", viewport={"width": 1280, "height": 800})
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture(scope="session")
def postgres_server():
    """One real PostgreSQL server for the session (Debian's binaries, our own cluster in a temp dir)."""
    from tools.postgres import PostgresServer

    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """A fresh, empty PostgreSQL database."""
    return postgres_server.create_database()


@pytest.fixture
def fleet_database_url(request, tmp_path: Path) -> str:
    """The fleet's database for one test: SQLite by default, PostgreSQL under `make test-postgres`."""
    if POSTGRES:
        return request.getfixturevalue("postgres_url")
    return f"sqlite:///{tmp_path / 'fleet.db'}"
