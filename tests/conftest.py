"""Fixtures: an injected clock, real SQLite files and a real PostgreSQL schema per test,
the Slack stand-in, and the whole app served over HTTP."""

from __future__ import annotations

import base64
import http.client
import logging
import os
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk.web.base_client import BaseClient
from sqlalchemy import create_engine, text

from bot.app import logs
from bot.app.config import Settings
from bot.app.demo import PEOPLE, post_score
from bot.app.factory import create_bolt_app
from bot.app.server import BackgroundServer
from bot.app.services import Services, slack_client
from bot.channels import resolve_channels
from bot.clock import FixedClock
from bot.org import import_org, parse_org
from bot.standin.client import SlackUserAgent
from bot.standin.server import SlackStandIn
from handlers.directory import SlackChannels, SlackDirectory
from handlers.http import create_web_app
from scheduler.sweeps import Sweeps
from storage.db import Database, holding_connection

PG_URL = os.environ.get("COACHLOOP_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
# Monday 23 November 2026, 14:30 in London (UTC+0 in winter).
MONDAY_AFTERNOON = datetime(2026, 11, 23, 14, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def logging_as_it_was() -> Iterator[None]:
    """A command run in-process configures logging: the root level, and a handler on the stderr pytest
    captured for that test alone. Put both back after every test, so that no later test's threads log
    to a closed stream, or at a level (SQLAlchemy's statements at INFO) that test did not choose."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    libraries = {name: logging.getLogger(name).level for name in logs.LIBRARY_LEVELS}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, library_level in libraries.items():
        logging.getLogger(name).setLevel(library_level)


@pytest.fixture(autouse=True)
def no_slack_call_inside_a_transaction(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test fails if any Slack Web API call is made while its thread holds a database connection."""
    offending: list[str] = []
    real_api_call = BaseClient.api_call

    def guarded(self: BaseClient, api_method: str, *args: Any, **kwargs: Any) -> Any:
        if holding_connection():
            offending.append(api_method)
        return real_api_call(self, api_method, *args, **kwargs)

    monkeypatch.setattr(BaseClient, "api_call", guarded)
    yield
    assert not offending, f"Slack called while a database transaction was open: {offending}"


def _postgres_available() -> str | None:
    try:
        engine = create_engine(PG_URL)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        return f"{type(exc).__name__}: {exc}".splitlines()[0]


@pytest.fixture(scope="session")
def postgres_url() -> str:
    problem = _postgres_available()
    if problem is not None:
        if os.environ.get("COACHLOOP_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL is required but not reachable at {PG_URL}: {problem}")
        pytest.skip(f"no PostgreSQL at COACHLOOP_TEST_DATABASE_URL ({PG_URL}): {problem}")
    return PG_URL


def make_database(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Database:
    """A database at the code's schema revision, built by the migrations (as `coachloop db upgrade` does)."""
    db = empty_database(backend, tmp_path, request)
    db.create_schema()
    return db


def pg_schema_url(url: str, schema: str) -> str:
    """A PostgreSQL URL whose connections use `schema` (for processes started with DATABASE_URL)."""
    return f"{url}?options=-csearch_path%3D{schema}"


def empty_database(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Database:
    """A database with no tables: a SQLite file, or a PostgreSQL schema of its own dropped afterwards."""
    if backend == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'coachloop.db'}")
    else:
        url = request.getfixturevalue("postgres_url")
        schema = f"t_{uuid.uuid4().hex[:12]}"
        admin = create_engine(url)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        db = Database(url, schema=schema)

        def drop() -> None:
            db.dispose()
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()

        request.addfinalizer(drop)
    return db


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    database = make_database(request.param, tmp_path, request)
    yield database
    database.dispose()


@pytest.fixture
def sqlite_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    database = make_database("sqlite", tmp_path, request)
    yield database
    database.dispose()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(MONDAY_AFTERNOON)


@contextmanager
def workspace(now: Callable[[], float]) -> Iterator[SlackStandIn]:
    """The stand-in with the sample workspace's people and leadership channel; its messages are
    timed by `now`."""
    with SlackStandIn("xoxb-test-" + secrets.token_hex(6), now=now) as s:
        for user in PEOPLE:
            s.add_user(*user)
        s.add_channel("C0LEADERS", "cx-leadership", bot_member=True)
        yield s


@pytest.fixture
def standin(clock: FixedClock) -> Iterator[SlackStandIn]:
    """On the test's clock, which the app in the test process runs on too."""
    with workspace(lambda: clock.now().timestamp()) as s:
        yield s


@pytest.fixture
def live_standin() -> Iterator[SlackStandIn]:
    """On the real clock, as Slack is: for `serve` processes, which run on the system clock."""
    with workspace(time.time) as s:
        yield s


def sample_org() -> str:
    return resources.files("bot.app").joinpath("demo_org.yml").read_text()


@dataclass
class Stack:
    """The running app: services, the HTTP server, the Slack stand-in and people to click."""

    services: Services
    server: BackgroundServer
    standin: SlackStandIn
    people: SlackUserAgent
    clock: FixedClock
    sweeps: Sweeps
    socket_handler: SocketModeHandler | None = None

    def stop(self) -> None:
        if self.socket_handler is not None:
            # slack_sdk's built-in client can wait forever in close() for a session thread that a
            # reconnect left behind: closing is given a few seconds, on a thread of its own.
            closing = threading.Thread(target=self.socket_handler.close, daemon=True)
            closing.start()
            closing.join(timeout=10)
        self.server.stop()

    @property
    def db(self) -> Database:
        return self.services.db

    @property
    def url(self) -> str:
        return self.server.url

    def status_of_headers(self, path: str, headers: dict[str, str]) -> int:
        """POST only the headers (a Content-Length promising a body) and read the answer: for answers
        the server gives before reading the body, which sending it could meet closed."""
        conn = http.client.HTTPConnection(self.server.host, self.server.port, timeout=10)
        try:
            conn.putrequest("POST", path)
            for name, value in headers.items():
                conn.putheader(name, value)
            conn.endheaders()
            return conn.getresponse().status
        finally:
            conn.close()

    def post_score(self, payload: dict[str, Any], at: datetime | None = None) -> tuple[int, Any]:
        return post_score(self.url, self.services.settings.qa_webhook_secret, payload, at or self.clock.now())

    def sweep(self) -> Any:
        return self.sweeps.run_once()

    def dm(self, user_id: str) -> list[dict[str, Any]]:
        return self.standin.messages(self.standin.dm_of(user_id))

    def message(self, user_id: str, key_part: str) -> dict[str, Any]:
        for m in self.dm(user_id):
            if key_part in (m.get("metadata") or {}).get("event_payload", {}).get("dedupe_key", ""):
                return m
        raise LookupError(f"no message {key_part!r} in {user_id}'s DM")


def build_stack(
    db: Database,
    standin: SlackStandIn,
    clock: FixedClock,
    org_text: str | None = None,
    *,
    socket_mode: bool = False,
) -> Stack:
    """The app serving the QA webhook over HTTP, and Slack over signed HTTP or over Socket Mode."""
    app_token = "xapp-1-A0COACH-" + secrets.token_hex(8) if socket_mode else None
    settings = Settings(
        database_url=db.url,
        slack_bot_token=standin.token,
        slack_signing_secret=secrets.token_hex(16),
        qa_webhook_secret="whsec_" + base64.b64encode(secrets.token_bytes(24)).decode(),
        slack_app_token=app_token,
        slack_api_url=standin.url,
    )
    services = Services(
        settings=settings, db=db, clock=clock, slack=slack_client(settings, interactive=False)
    )
    spec, _ = resolve_channels(parse_org(org_text or sample_org()), SlackChannels(services.slack))
    import_org(db, spec, SlackDirectory(services.slack), clock.now())
    bolt = create_bolt_app(services)
    server = BackgroundServer(create_web_app(services, bolt)).start()
    people = SlackUserAgent(server.url, settings.slack_signing_secret, standin, socket_mode=socket_mode)
    handler = None
    if app_token is not None:
        # As `coachloop serve` does with SLACK_APP_TOKEN: Bolt's built-in Socket Mode client.
        endpoint = standin.socket_mode(app_token)
        handler = SocketModeHandler(bolt, app_token)
        handler.connect()
        endpoint.wait_connections(1)
    return Stack(services, server, standin, people, clock, Sweeps(services), handler)


@pytest.fixture
def stack(sqlite_db: Database, standin: SlackStandIn, clock: FixedClock) -> Iterator[Stack]:
    s = build_stack(sqlite_db, standin, clock)
    yield s
    s.stop()


@pytest.fixture(params=["http", "socket_mode"])
def transport_stack(
    request: pytest.FixtureRequest, sqlite_db: Database, standin: SlackStandIn, clock: FixedClock
) -> Iterator[Stack]:
    """The app with Slack's requests arriving over signed HTTP, or over Socket Mode."""
    s = build_stack(sqlite_db, standin, clock, socket_mode=request.param == "socket_mode")
    yield s
    s.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_stack(
    request: pytest.FixtureRequest, tmp_path: Path, standin: SlackStandIn, clock: FixedClock
) -> Iterator[Stack]:
    database = make_database(request.param, tmp_path, request)
    s = build_stack(database, standin, clock)
    yield s
    s.stop()
    database.dispose()


# The end of the simulated history: a Friday afternoon, so the figures do not depend on today.
HISTORY_END = datetime(2026, 11, 27, 16, 0, tzinfo=UTC)


@dataclass
class History:
    db_url: str
    said: str


@pytest.fixture(scope="session")
def demo_history(tmp_path_factory: pytest.TempPathFactory) -> History:
    """Eight weeks simulated once for the session through the real paths (`coachloop demo --weeks 8`)."""
    from bot.app.demo_history import run_history

    path = tmp_path_factory.mktemp("history") / "history.db"
    lines: list[str] = []
    assert run_history(8, keep=str(path), end=HISTORY_END, say=lines.append) == 0
    return History(f"sqlite:///{path}", "\n".join(lines))
