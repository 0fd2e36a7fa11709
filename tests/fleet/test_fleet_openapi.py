"""The REST API is documented by OpenAPI, and schemathesis finds no server error in it.

Schemathesis generates requests from /openapi.json (bounded: a few examples
per operation) and sends them, with an API token, to the app on a small
seeded database. The values SQLite stores and PostgreSQL refuses (an integer
past 32 bits, a NUL character) are sent to every parameter on the database
the tests run on.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
import schemathesis
from fastapi.testclient import TestClient
from fleet_testkit import CENTER, DISPLAY, add_user
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import CacheConfig
from schemathesis.core import NotSet

from fleet.app import create_app
from fleet.ingest import handle_message
from fleet.settings import Settings
from protocol import topics

ON_ITS_OWN_SQLITE = pytest.mark.sqlite_only(
    reason="one seeded app for the module, on a SQLite file (fleet_database_url is made per test): the document "
           "does not depend on the database, and what PostgreSQL refuses is test_a_value_the_database_cannot_hold_*")


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


@ON_ITS_OWN_SQLITE
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


@ON_ITS_OWN_SQLITE
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


# A value SQLite stores and PostgreSQL refuses, by the type of a parameter: PostgreSQL's INTEGER (every row id)
# is 32-bit, its text holds no NUL. Beside it, the same kind of value that any database holds.
UNHOLDABLE = {"integer": (2**31 - 1, 2**31), "string": ("x", "x\x00y")}


def parameter_type(schema: dict) -> str | None:
    """'integer' or 'string' for a parameter's schema (also `T | None`), else None."""
    for option in [schema, *schema.get("anyOf", [])]:
        if option.get("type") in UNHOLDABLE:
            return option["type"]
    return None


def test_a_value_the_database_cannot_hold_is_refused_not_a_server_error(fleet_database_url, tmp_path,
                                                                         monkeypatch) -> None:
    app = seeded_app(fleet_database_url)
    headers = {"Authorization": f"Bearer {app.state.test_token}"}
    monkeypatch.chdir(tmp_path)  # schemathesis keeps its files out of the work tree, as above
    config = schemathesis.Config(cache=CacheConfig(directory=str(tmp_path / "schemathesis")))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
    client = TestClient(app, raise_server_exceptions=False)
    reached: set[tuple[str, str]] = set()

    def send(case, name: str, where: str, value) -> int:
        path, query = dict(case.path_parameters or {}), dict(case.query or {})
        (path if where == "path" else query)[name] = value
        url = case.operation.path.format(**{key: quote(str(v), safe="") for key, v in path.items()})
        body = {} if isinstance(case.body, NotSet) else {"json": case.body}
        return client.request(case.method, url, params=query, headers=headers, **body).status_code

    def check(operation, name: str, where: str, kind: str) -> None:
        holdable, unholdable = UNHOLDABLE[kind]

        # Requests schemathesis makes valid (their bodies too) with this parameter replaced: when the holdable
        # value passes validation, the route ran with it, so the unholdable one reaches the database too.
        @given(case=operation.as_strategy())
        @settings(max_examples=3, derandomize=True, deadline=None, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))  # no shrinking: the failing value is ours, not drawn
        def no_server_error(case) -> None:
            if send(case, name, where, holdable) != 422:
                reached.add((operation.label, name))
            status = send(case, name, where, unholdable)
            assert status < 500, f"{operation.label} {name}={unholdable!r}: {status}"

        no_server_error()

    failures = []
    for operation in [result.ok() for result in schema.get_all_operations()]:
        for parameter in operation.definition.raw.get("parameters", []):
            kind = parameter_type(parameter["schema"])
            if kind is not None and parameter["in"] in ("path", "query"):
                try:
                    check(operation, parameter["name"], parameter["in"], kind)
                except AssertionError as exc:  # every failing parameter is reported, not just the first
                    failures.append(str(exc).splitlines()[0])
    assert not failures, "\n".join(failures)
    # The requests reached the routes' queries (row ids, device ids, center codes), not just validation.
    assert {("POST /api/cases/{case_id}/assign", "case_id"), ("GET /api/devices/{device_id}/health", "device_id"),
            ("GET /api/config/devices", "center"), ("GET /api/devices", "center")} <= reached
