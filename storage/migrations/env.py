"""Alembic environment: runs on the connection `storage.schema` hands it (never opens its own),
so that migrations use the same engine settings (SQLite pragmas, PostgreSQL search_path)."""

from __future__ import annotations

from typing import Any, Literal

from alembic import context

from storage.models import Base, UTCDateTime

config = context.config


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    """Write the model's UTC-enforcing column type as the plain DateTime it stores."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime()"
    return False


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError(
            "run migrations through `coachloop db upgrade` (storage.schema), not alembic's CLI"
        )
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite alters tables by copying them: batch mode writes migrations that work on both databases.
        render_as_batch=True,
        compare_type=True,
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported")
run()
