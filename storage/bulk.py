"""Bulk writes of scored evaluations' items, straight to the database driver (one executemany)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy.engine import Connection

ITEM_COLUMNS = ("evaluation_id", "position", "key", "name", "category", "score", "max_score", "weight",
                "critical", "comment", "at_seconds", "good_looks_like")  # fmt: skip


def item_values(items: Iterable[Any]) -> list[tuple[Any, ...]]:
    """The `evaluation_items` rows of one evaluation without its id (ITEM_COLUMNS[1:]), from `ItemInput`s."""
    return [
        (
            position,
            it.key,
            it.name,
            it.category,
            it.score,
            it.max_score,
            it.weight,
            it.critical,
            it.comment,
            it.at_seconds,
            it.good_looks_like,
        )  # fmt: skip
        for position, it in enumerate(items)
    ]


def item_rows(evaluation_id: int, items: Iterable[Any]) -> list[tuple[Any, ...]]:
    """The `evaluation_items` rows of one evaluation, in ITEM_COLUMNS order, from its `ItemInput`s."""
    return [(evaluation_id, *values) for values in item_values(items)]


def insert_items(conn: Connection, rows: list[tuple[Any, ...]]) -> None:
    """Insert item rows (plain values only, in ITEM_COLUMNS order) with the driver's own executemany."""
    if not rows:
        return
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    marks = ", ".join([mark] * len(ITEM_COLUMNS))
    conn.exec_driver_sql(f"INSERT INTO evaluation_items ({', '.join(ITEM_COLUMNS)}) VALUES ({marks})", rows)
