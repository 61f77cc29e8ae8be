"""`coachloop purge --before DATE` and `coachloop forget --email ADDRESS` (domain rules in bot/privacy.py)."""

from __future__ import annotations

import argparse
import getpass
from datetime import UTC, date, datetime

from bot import privacy
from bot.app import dbcli
from bot.app.config import ConfigError
from bot.clock import SystemClock
from storage.db import Database


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _run(work: str, args: argparse.Namespace, act: object) -> int:
    db = Database(dbcli.database_url())
    db.require_current_schema()
    try:
        with db.unit_of_work() as session:
            removed = act(session)  # type: ignore[operator]
            if args.dry_run:
                session.rollback()
    except privacy.PrivacyError as exc:
        raise ConfigError(str(exc)) from None
    finally:
        db.dispose()
    print(f"{work}{' (dry run: nothing was changed)' if args.dry_run else ''}:")
    for line in removed.lines():
        print(line)
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    try:
        day = date.fromisoformat(args.before)
    except ValueError:
        raise ConfigError(f"--before {args.before!r} must be a date such as 2025-01-01") from None
    before = datetime(day.year, day.month, day.day, tzinfo=UTC)
    now = SystemClock().now()
    return _run(
        f"purged text older than {day.isoformat()}",
        args,
        lambda session: privacy.purge(session, before, now, _actor()),
    )


def cmd_forget(args: argparse.Namespace) -> int:
    now = SystemClock().now()
    return _run(
        f"forgot {args.email.strip().lower()}",
        args,
        lambda session: privacy.forget(session, args.email, now, _actor()),
    )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    purge = sub.add_parser(
        "purge", help="remove raw payloads, evaluator comments and examples older than a date (figures stay)"
    )
    purge.add_argument("--before", required=True, help="a date, e.g. 2025-01-01 (midnight UTC)")
    purge.add_argument("--dry-run", action="store_true", help="say what would be removed; change nothing")
    purge.set_defaults(func=cmd_purge)
    forget = sub.add_parser("forget", help="remove one person's personal data (e.g. an agent who left)")
    forget.add_argument("--email", required=True)
    forget.add_argument("--dry-run", action="store_true", help="say what would be removed; change nothing")
    forget.set_defaults(func=cmd_forget)
