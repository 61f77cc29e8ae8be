"""Engine, schema, the unit of work, and locks shared by every process on one database."""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from sqlalchemy import create_engine, event, func, select, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

_LOCAL_LOCKS: dict[str, threading.Lock] = {}
_LOCAL_LOCKS_GUARD = threading.Lock()

_held = threading.local()


def holding_connection() -> bool:
    """True while this thread holds a database connection (a unit of work or lock is open).

    Network calls must not happen then: tests check it on every Slack call."""
    return getattr(_held, "count", 0) > 0


def _track_connections(engine: Engine) -> None:
    @event.listens_for(engine, "checkout")
    def _checkout(*_: Any) -> None:
        _held.count = getattr(_held, "count", 0) + 1

    @event.listens_for(engine, "checkin")
    def _checkin(*_: Any) -> None:
        _held.count = max(0, getattr(_held, "count", 0) - 1)


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for `pg_advisory_lock`, from a lock's name."""
    return int.from_bytes(hashlib.sha256(f"coachloop:{name}".encode()).digest()[:8], "big", signed=True)


class TurnLock:
    """A re-entrant lock handed over in the order it was asked for. (`threading.RLock` is not fair: a
    thread writing in a loop, like the score intake, could take it again and again before a click.)

    With `path`, the thread holding it also holds an exclusive `flock` on that file, taken in turn
    with the other processes using it: a process waits there, woken as soon as the lock is free."""

    def __init__(self, path: str | None = None) -> None:
        self._mutex = threading.Lock()
        self._owner: int | None = None
        self._depth = 0
        self._waiting: deque[tuple[int, threading.Lock]] = deque()
        self._path = path
        self._file: tuple[int, int] | None = None  # (the process that opened it, its descriptor)

    def __enter__(self) -> None:
        me = threading.get_ident()
        turn: threading.Lock | None = None
        with self._mutex:
            if self._owner == me or (self._owner is None and not self._waiting):
                self._owner, self._depth = me, self._depth + 1
                if self._depth > 1:
                    return
            else:
                turn = threading.Lock()
                turn.acquire()
                self._waiting.append((me, turn))
        if turn is not None:
            turn.acquire()  # released by the holder before us, who made this thread the owner
        if self._path is not None:
            try:
                fcntl.flock(self._descriptor(), fcntl.LOCK_EX)
            except BaseException:
                self._release(locked=False)
                raise

    def __exit__(self, *_: object) -> None:
        self._release(locked=self._path is not None)

    def _release(self, *, locked: bool) -> None:
        with self._mutex:
            self._depth -= 1
            if self._depth:
                return
            if locked:
                fcntl.flock(self._descriptor(), fcntl.LOCK_UN)
            if not self._waiting:
                self._owner = None
                return
            self._owner, turn = self._waiting.popleft()
            self._depth = 1
            turn.release()

    def _descriptor(self) -> int:
        """The lock file, opened once by each process (a forked child opens its own)."""
        if self._file is None or self._file[0] != os.getpid():
            assert self._path is not None
            self._file = (os.getpid(), os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600))
        return self._file[1]


class ReadOnlyTransaction(RuntimeError):
    """Something tried to write inside `Database.read()`."""


class Database:
    """One engine per process. On SQLite (WAL) a writing transaction starts with BEGIN IMMEDIATE, so
    that concurrent writers serialise instead of failing on a lock upgrade; a reading one (`read()`)
    starts with a plain BEGIN and sees a snapshot without waiting for writers."""

    def __init__(self, url: str, *, schema: str | None = None) -> None:
        self.url = url
        self.schema = schema
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        self._sqlite_path = (
            parsed.database if self.is_sqlite and parsed.database not in (None, "", ":memory:") else None
        )
        # Statement parameters hold evaluation comments and examples: never put them in an error or a log.
        kwargs: dict[str, Any] = {"future": True, "hide_parameters": True}
        if self.is_sqlite:
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        else:
            kwargs["pool_pre_ping"] = True
            if schema:
                kwargs["connect_args"] = {"options": f"-csearch_path={schema}"}
        self.engine: Engine = create_engine(url, **kwargs)
        # Reads get their own pool on SQLite: their transactions begin without the write lock.
        self.read_engine: Engine = create_engine(url, **kwargs) if self.is_sqlite else self.engine
        if self.is_sqlite:
            self._configure_sqlite(self.engine, "BEGIN IMMEDIATE")
            self._configure_sqlite(self.read_engine, "BEGIN")
            _track_connections(self.read_engine)
        _track_connections(self.engine)
        # SQLite has one writer at a time. Writers queue here, in turn, rather than in SQLite's busy
        # handler, whose growing sleeps let a busy writer (the score intake, or a sweeper in a process of
        # its own) starve a click: the threads of this process in order, the processes through a lock file.
        lock_file = f"{self._sqlite_path}.write.lock" if self._sqlite_path else None
        self._writing = TurnLock(lock_file) if self.is_sqlite else None
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._readers = sessionmaker(self.read_engine, expire_on_commit=False, autoflush=False)
        self._after_commit: list[Callable[[], None]] = []

    @staticmethod
    def _configure_sqlite(engine: Engine, begin: str) -> None:
        @event.listens_for(engine, "connect")
        def _connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            conn.exec_driver_sql(begin)

    def create_schema(self) -> None:
        """Bring the schema to the code's revision by running the migrations (storage/migrations)."""
        from storage.schema import upgrade

        upgrade(self)

    def require_current_schema(self) -> None:
        """Raise `storage.schema.SchemaError`, naming the command to run, unless the database is
        exactly at the code's revision (behind: `coachloop db upgrade`; ahead: a newer coachloop)."""
        from storage.schema import require_current

        require_current(self)

    @contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        """Hold a lock named `name` across every process using this database: a PostgreSQL advisory
        lock, or a lock file beside the SQLite file (a process-wide lock for an in-memory database)."""
        scope = f"{self.schema or ''}:{name}"
        if not self.is_sqlite:
            key = lock_key(scope)
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(select(func.pg_advisory_lock(key)))
                try:
                    yield
                finally:
                    conn.execute(select(func.pg_advisory_unlock(key)))
            return
        with _LOCAL_LOCKS_GUARD:
            local = _LOCAL_LOCKS.setdefault(f"{self._sqlite_path}:{scope}", threading.Lock())
        with local:
            if self._sqlite_path is None:
                yield
                return
            with open(f"{self._sqlite_path}.{name}.lock", "a") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(fh, fcntl.LOCK_UN)

    def ping(self) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(text("SELECT 1")).scalar() == 1

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` after a unit of work that queued outgoing work commits (wakes the sweep)."""
        self._after_commit.append(callback)

    @contextmanager
    def unit_of_work(self) -> Iterator[Session]:
        """A session that commits when the block ends and rolls back on any error."""
        with self._writing or nullcontext():
            session = self._sessions()
            try:
                yield session
                session.commit()
                wake = bool(session.info.get("wake"))
            except BaseException:
                session.rollback()
                raise
            finally:
                session.close()
        if wake:
            for callback in self._after_commit:
                callback()

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading only: on SQLite it never takes the write lock, so listener lookups,
        Home and /coach answer while writers queue. Anything it tries to write is refused."""
        session = self._readers()
        session.info["read_only"] = True
        try:
            yield session
        finally:
            session.close()  # ends the transaction (nothing to keep) and leaves loaded objects usable

    def dispose(self) -> None:
        self.engine.dispose()
        if self.read_engine is not self.engine:
            self.read_engine.dispose()


@event.listens_for(Session, "before_flush")
def _refuse_writes_when_reading(session: Session, _context: Any, _instances: Any) -> None:
    if session.info.get("read_only") and (session.new or session.dirty or session.deleted):
        raise ReadOnlyTransaction("a read-only session tried to write; use Database.unit_of_work()")
