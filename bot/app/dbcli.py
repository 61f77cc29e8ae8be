"""`coachloop db upgrade | current | history | revision`: the schema's migrations from the command line."""

from __future__ import annotations

import argparse
import os

from storage.db import Database
from storage.schema import SchemaError, code_head, history, new_revision, status, upgrade


def database_url() -> str:
    return os.environ.get("DATABASE_URL", "").strip() or "sqlite:///coachloop.db"


def cmd_upgrade(args: argparse.Namespace) -> int:
    db = Database(database_url())
    try:
        report = upgrade(db, args.revision)
    finally:
        db.dispose()
    for line in report.lines():
        print(line)
    return 0


def cmd_current(args: argparse.Namespace) -> int:
    db = Database(database_url())
    try:
        state = status(db)
    finally:
        db.dispose()
    print(f"database: {state.current or ('made before migrations' if state.legacy else 'no schema')}")
    print(f"code:     {state.head}")
    problem = state.problem()
    if problem is not None:
        raise SchemaError(problem)
    print("up to date")
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    head = code_head()
    for line in history():
        print(line + ("  <- head" if line.startswith(head + " ") else ""))
    return 0


def cmd_revision(args: argparse.Namespace) -> int:
    paths = new_revision(args.message)
    for path in paths:
        print(f"wrote {path}: read it, run the tests (tests/test_migrations.py), commit it")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    db = sub.add_parser("db", help="the database schema: upgrade, current, history").add_subparsers(
        dest="db_command", required=True
    )
    up = db.add_parser("upgrade", help="migrate the database at DATABASE_URL to this version (run it once)")
    up.add_argument("revision", nargs="?", default="head", help="a revision id; default: the code's (head)")
    up.set_defaults(func=cmd_upgrade)
    db.add_parser(
        "current", help="the database's revision and the code's; exit 2 when they differ"
    ).set_defaults(func=cmd_current)
    db.add_parser("history", help="every migration, newest first").set_defaults(func=cmd_history)
    rev = db.add_parser(
        "revision", help="for developers: write the migration for what changed in storage/models.py"
    )
    rev.add_argument("-m", "--message", required=True, help="what the change is, e.g. 'Cases remember X'")
    rev.set_defaults(func=cmd_revision)
