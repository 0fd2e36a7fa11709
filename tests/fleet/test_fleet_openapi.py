"""The REST API is documented by OpenAPI, and schemathesis finds no server error in it.

Schemathesis generates requests from /openapi.json (bounded: a few examples
per operation) and sends them, with an API token, to the app on a small
seeded database.
"""

from __future__ import annotations

import json

import pytest
import schemathesis
from fleet_testkit import CENTER, DISPLAY, add_user
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import CacheConfig

from fleet.app import create_app
from fleet.ingest import handle_message
from fleet.settings import Settings
from protocol import topics

pytestmark = pytest.mark.sqlite_only(
    reason="one seeded app for the module, on a SQLite file (fleet_database_url is made per test): the document "
           "does not depend on the database, and the routes' queries run on PostgreSQL in the API and page tests")


def seeded_app(database_url: str):
    app = create_app(Settings(database_url=database_url, ingest_enabled=False))
    engine = app.state.engine
    birth = {"v": 1, "state": "online", "session": 1, "board": "b", "fw": "1", "contract": 1}
    handle_message(engine, topics.build(topics.EDGE_PRESENCE, center=CENTER),
                   json.dumps({**birth, "role": "edge_agent"}).encode())
    handle_message(engine, topics.build(topics.DEVICE_PRESENCE, center=CENTER, device=DISPLAY),
                   json.dumps({**birth, "role": "queue_display", "window": 1}).encode())
    handle_message(engine, topics.build(topics.DEVICE_HEALTH, center=CENTER, device=DISPLAY),
                   json.dumps({"v": 1, "session": 1, "uptime_s": 3, "rssi": -50}).encode())
    app.state.test_token = add_user(engine)
    return app


@pytest.fixture(scope="module")
def api_app(tmp_path_factory):
    return seeded_app(f"sqlite:///{tmp_path_factory.mktemp('openapi') / 'fleet.db'}")


def test_every_route_is_documented_with_a_response_model_and_a_tag(api_app) -> None:
    spec = api_app.openapi()
    operations = [(path, method, op) for path, item in spec["paths"].items() for method, op in item.items()]
    assert {path for path, _, _ in operations} >= {"/api/centers", "/api/centers/{code}", "/api/devices",
                                                   "/api/devices/{device_id}/health", "/api/audit", "/api/me",
                                                   "/healthz", "/metrics"}
    for path, method, op in operations:
        assert op.get("tags"), f"{method} {path} has no tag"
        ok = op["responses"].get("200", {}).get("content", {})
        assert ok and any(body.get("schema") or "text/plain" in media for media, body in ok.items()), \
            f"{method} {path} has no documented response"
    assert not any(path in ("/", "/login", "/users") for path in spec["paths"])  # pages are not API


def test_schemathesis_finds_no_server_error(api_app, tmp_path, monkeypatch) -> None:
    # Schemathesis' pytest plugin does not run under pytest 9 (it reads Function._nodeid), so the
    # operations are driven through its Python API with Hypothesis directly: same cases, same check.
    # What it keeps on disk (its cache and crash files, in `.schemathesis/` of the current directory by
    # default) goes under this test's tmp directory, never into the work tree: an explicit configuration
    # (no schemathesis.toml looked up from the tree) with its cache there, run from there.
    monkeypatch.chdir(tmp_path)
    config = schemathesis.Config(cache=CacheConfig(directory=str(tmp_path / "schemathesis")))
    schema = schemathesis.openapi.from_asgi("/openapi.json", api_app, config=config)
    headers = {"Authorization": f"Bearer {api_app.state.test_token}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8
    failures = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=20, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def no_server_error(case) -> None:
            case.call_and_validate(headers=headers, checks=[not_a_server_error])

        try:
            no_server_error()
        except Exception as exc:  # every failing operation is reported, not just the first
            failures.append(f"{operation.label}: {type(exc).__name__}: {str(exc)[:600]}")
    assert not failures, "\n\n".join(failures)
