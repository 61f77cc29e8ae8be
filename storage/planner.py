"""A hint for SQLite's query planner, which keeps no statistics unless ANALYZE runs."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import NullType


class filter_only(FunctionElement[Any]):  # noqa: N801 - used like SQLAlchemy's own func.* constructs
    """A condition SQLite filters rows with rather than searching an index by it.

    Without statistics SQLite expects an equality on an indexed column to match a few rows, so a state or
    status equality looks better than a batch's dozen keys, and the lookup reads every awaiting case or
    every pending message. SQLite is told the condition is true of most rows (`likelihood`), which keeps
    it usable for a partial index's own condition; elsewhere it is the condition as it is."""

    type = NullType()  # rendered as it is (a Boolean one would be compared with 1 on SQLite)
    inherit_cache = True
    name = "filter_only"


@compiles(filter_only)
def _as_it_is(element: filter_only, compiler: SQLCompiler, **kw: Any) -> str:
    return f"({compiler.process(element.clauses, **kw)})"


@compiles(filter_only, "sqlite")
def _likely(element: filter_only, compiler: SQLCompiler, **kw: Any) -> str:
    return f"likelihood({compiler.process(element.clauses, **kw)}, 0.9375)"
