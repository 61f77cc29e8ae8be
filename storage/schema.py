"""The schema's version: Alembic migrations in storage/migrations, run on a `Database`'s own engine.

`upgrade` brings any database to the code's revision (a database made by `create_all` before
migrations existed is recognised and stamped as the first revision, keeping its data);
`status` says whether a database matches the code, and what to run when it does not.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

if TYPE_CHECKING:
    from storage.db import Database

FIRST_REVISION = "0001"
# The tables the first revision made: a database holding all of them and no alembic_version
# table was made by `create_all` before migrations existed.
FIRST_TABLES = frozenset(
    {
        "people",
        "teams",
        "team_agents",
        "team_escalations",
        "evaluations",
        "evaluation_items",
        "cases",
        "timers",
        "outbox",
        "audit_log",
    }
)
VERSION_TABLE = "alembic_version"
UPGRADE_HINT = "run `coachloop db upgrade` (once, before starting the new version)"


class SchemaError(Exception):
    """The database does not match the code; the message says what to run."""


def migrations_dir() -> Path:
    return Path(str(resources.files("storage").joinpath("migrations")))


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    config.set_main_option("truncate_slug_length", "60")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@lru_cache(maxsize=1)
def scripts() -> ScriptDirectory:
    """The migration scripts (read once per process; `new_revision` clears it)."""
    return ScriptDirectory.from_config(alembic_config())


def code_head() -> str:
    head = scripts().get_current_head()
    if head is None:
        raise SchemaError("no migrations found in storage/migrations/versions")
    return head


@dataclass(frozen=True)
class SchemaStatus:
    current: str | None  # the database's revision; None when it has none
    head: str  # the code's revision
    legacy: bool  # made by create_all before migrations: upgrade stamps it
    known: bool  # the database's revision is one the code knows

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head

    def problem(self) -> str | None:
        if self.up_to_date:
            return None
        if self.legacy:
            return f"the database was made before coachloop had migrations: {UPGRADE_HINT}; it keeps its data"
        if self.current is None:
            return f"the database has no coachloop tables yet: {UPGRADE_HINT}"
        if not self.known:
            return (
                f"the database is at revision {self.current}, which this version of coachloop does not know "
                f"(it was migrated by a newer version; this code is at {self.head}): "
                "run the newer coachloop, or point DATABASE_URL at this version's database"
            )
        return f"the database is at revision {self.current} and this code needs {self.head}: {UPGRADE_HINT}"


def _revision(conn: Connection) -> tuple[str | None, bool]:
    tables = set(inspect(conn).get_table_names())
    if VERSION_TABLE in tables:
        return MigrationContext.configure(conn).get_current_revision(), False
    ours = tables & FIRST_TABLES
    if not ours:
        return None, False
    if ours != FIRST_TABLES:
        missing = ", ".join(sorted(FIRST_TABLES - ours))
        raise SchemaError(
            f"the database holds some coachloop tables but not all (missing: {missing}) and no "
            f"{VERSION_TABLE} table: it was not made by coachloop; restore it from a backup"
        )
    return None, True


def status(db: Database) -> SchemaStatus:
    head = code_head()
    with db.engine.connect() as conn:
        current, legacy = _revision(conn)
    return SchemaStatus(current, head, legacy, _known(current))


def require_current(db: Database) -> None:
    problem = status(db).problem()
    if problem is not None:
        raise SchemaError(problem)


@contextmanager
def _migration_connection(db: Database) -> Iterator[Connection]:
    """One connection in one transaction; SQLite's foreign keys are off while tables are rebuilt."""
    with db.engine.connect() as conn:
        raw: Any = conn.connection.driver_connection if db.is_sqlite else None
        if raw is not None:
            raw.execute("PRAGMA foreign_keys=OFF")
        try:
            with conn.begin():
                yield conn
                if raw is not None:
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise SchemaError(f"the migration left rows breaking foreign keys: {broken[:5]}")
        finally:
            if raw is not None:
                raw.execute("PRAGMA foreign_keys=ON")


@dataclass(frozen=True)
class UpgradeReport:
    before: str | None
    after: str
    stamped_legacy: bool

    def lines(self) -> list[str]:
        out = []
        if self.stamped_legacy:
            out.append(f"database made before migrations: recognised as revision {FIRST_REVISION}")
        if self.before == self.after:
            out.append(f"already at {self.after}; nothing to do")
        else:
            out.append(f"upgraded from {self.before or 'an empty database'} to {self.after}")
        return out


def upgrade(db: Database, target: str = "head") -> UpgradeReport:
    """Migrate to `target` under the database's exclusive schema lock (safe from several processes)."""
    with db.exclusive("schema"), _migration_connection(db) as conn:
        before, legacy = _revision(conn)
        config = alembic_config(conn)
        if legacy:
            command.stamp(config, FIRST_REVISION)
            before = FIRST_REVISION
        elif not _known(before):
            raise SchemaError(SchemaStatus(before, code_head(), False, False).problem() or "")
        command.upgrade(config, target)
        after = MigrationContext.configure(conn).get_current_revision()
    assert after is not None
    return UpgradeReport(before, after, legacy)


def _known(revision: str | None) -> bool:
    if revision is None:
        return True
    try:
        return scripts().get_revision(revision) is not None
    except Exception:  # noqa: BLE001 - alembic raises several kinds for an unknown revision
        return False


def history() -> list[str]:
    out = []
    for script in scripts().walk_revisions():
        doc = (script.doc or "").strip().splitlines()[0] if script.doc else ""
        out.append(f"{script.revision}  {doc}  (after {script.down_revision or 'nothing'})")
    return out


def next_revision_id() -> str:
    numbers = [int(r.revision) for r in scripts().walk_revisions() if re.fullmatch(r"\d{4}", r.revision)]
    return f"{max(numbers, default=0) + 1:04d}"


def new_revision(message: str) -> list[Path]:
    """Write the migration that takes the last revision to what storage/models.py now says.

    Alembic compares the models with a scratch SQLite database migrated to head; the batch-mode
    operations it writes run on SQLite and on PostgreSQL alike. Read the file before committing it.
    """
    from storage.db import Database

    with tempfile.TemporaryDirectory() as tmp:
        scratch = Database(f"sqlite:///{Path(tmp) / 'scratch.db'}")
        try:
            upgrade(scratch)
            with scratch.engine.connect() as conn, conn.begin():
                config = alembic_config(conn)
                made = command.revision(config, message=message, autogenerate=True, rev_id=next_revision_id())
        finally:
            scratch.dispose()
    scripts.cache_clear()
    written = made if isinstance(made, list) else [made]
    return [Path(s.path) for s in written if s is not None]
