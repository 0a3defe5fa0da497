"""Shared fixtures: every database test runs on SQLite and, when TEST_DATABASE_URL is set,
on PostgreSQL too. The API is exercised over real HTTP against a live server thread."""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import requests
from sqlalchemy import create_engine, text
from werkzeug.serving import make_server

from premium_billing import create_app
from premium_billing.config import Settings
from premium_billing.db.engine import normalize_url
from premium_billing.db.migrate import upgrade
from premium_billing.models import metadata

# No per-example deadline: on a loaded machine (CI, two backends, two workers) a property's
# example may take longer than 200 ms; what a property test asserts is its property.
hypothesis.settings.register_profile("billing", deadline=None)
hypothesis.settings.load_profile("billing")

PG_URL = os.environ.get("TEST_DATABASE_URL", "")
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        wanted = BACKENDS
        if metafunc.definition.get_closest_marker("postgresql_only"):
            wanted = [b for b in BACKENDS if b == "postgresql"]
        metafunc.parametrize("backend", wanted)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Without PostgreSQL, PostgreSQL-only tests have no backend to run on: deselect them
    # (they are not skipped: CI sets TEST_DATABASE_URL and runs them).
    if PG_URL:
        return
    kept = [i for i in items if not i.get_closest_marker("postgresql_only")]
    dropped = [i for i in items if i.get_closest_marker("postgresql_only")]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def pytest_report_header(config: pytest.Config) -> str:
    return f"database backends: {', '.join(BACKENDS)}"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


def _admin_url(url: str) -> str:
    base, _, _ = normalize_url(url).rpartition("/")
    return f"{base}/postgres"


@pytest.fixture(scope="session")
def pg_url(worker_id: str) -> Iterator[str]:
    """A database of its own for this test process, migrated once."""
    name = f"pb_test_{worker_id}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(_admin_url(PG_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    base, _, _ = normalize_url(PG_URL).rpartition("/")
    url = f"{base}/{name}"
    upgrade(url)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def worker_id() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _truncate_postgresql(url: str) -> None:
    tables = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    engine = create_engine(normalize_url(url))
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database of the given backend for one test."""
    if backend == "sqlite":
        path = tmp_path / "billing.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("pg_url")
    _truncate_postgresql(url)
    return url


@pytest.fixture
def settings(database_url: str) -> Settings:
    # The tests use fixed business dates, past and future: time travel on, as in the demo
    # (tests/integration/test_business_dates.py turns it off to test the guard).
    return Settings(database_url=database_url, allow_time_travel=True)


@pytest.fixture
def app(settings: Settings) -> Iterator[Any]:
    app = create_app(settings)
    yield app
    app.extensions["premium_billing.db"].dispose()


@pytest.fixture
def db(app: Any) -> Any:
    """The app's Database (engine + sessions) for arranging and checking rows."""
    return app.extensions["premium_billing.db"]


class LiveServer:
    def __init__(self, app: Any, port: int = 0) -> None:
        self.server = make_server("127.0.0.1", port, app, threaded=True)
        self.base_url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def __enter__(self) -> LiveServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.thread.join(timeout=5)
        self.server.server_close()


@pytest.fixture
def live_server(app: Any) -> Iterator[LiveServer]:
    with LiveServer(app) as server:
        yield server


@dataclass
class ApiClient:
    """requests against the live server, with a bearer key and /api/v1 prefixed."""

    base_url: str
    key: str | None
    session: requests.Session

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = dict(kwargs.pop("headers", None) or {})
        if self.key is not None and "Authorization" not in headers:
            headers["Authorization"] = f"Bearer {self.key}"
        url = path if path.startswith("http") else self.base_url + path
        return self.session.request(method, url, headers=headers, timeout=30, **kwargs)

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        return self.request("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> requests.Response:
        return self.request("PUT", path, **kw)

    def patch(self, path: str, **kw: Any) -> requests.Response:
        return self.request("PATCH", path, **kw)

    def delete(self, path: str, **kw: Any) -> requests.Response:
        return self.request("DELETE", path, **kw)

    def as_key(self, key: str | None) -> ApiClient:
        return ApiClient(self.base_url, key, self.session)


@pytest.fixture
def make_key(db: Any) -> Any:
    from premium_billing.http.keys import create_key

    def make(role: str = "admin", name: str = "test") -> str:
        with db.session() as session:
            return create_key(session, role, name).raw

    return make


@pytest.fixture
def api(live_server: LiveServer, make_key: Any) -> Iterator[ApiClient]:
    with requests.Session() as session:
        yield ApiClient(live_server.base_url + "/api/v1", make_key("admin", "ops"), session)
