"""The `coachloop` command."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from datetime import datetime

from bot.app import check, dbcli, logs, privacycli
from bot.app.config import ConfigError, Settings, load_settings
from bot.clock import SystemClock
from storage.schema import SchemaError

_database = dbcli.database_url


def cmd_serve(args: argparse.Namespace) -> int:
    settings = load_settings()
    metrics_dir = _metrics_shared_between_processes() if settings.sweeps == "process" else None
    try:
        return _serve(settings)
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


METRICS_DIR_PREFIX = "coachloop-metrics-"


def _metrics_shared_between_processes() -> str | None:
    """A directory where this process and its sweeper keep their counters, so that `/metrics` adds them
    up (prometheus_client's multiprocess mode; it must be chosen before the library is imported). None
    when the operator gave one in PROMETHEUS_MULTIPROC_DIR (theirs to empty between runs). Directories
    left by a `serve` that was killed are removed."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return None
    if "prometheus_client" in sys.modules:
        logging.getLogger("coachloop").warning(
            "prometheus_client was imported before serve started: /metrics shows the web server's "
            "counters only, not its sweeper's"
        )
        return None
    base = tempfile.gettempdir()
    for name in os.listdir(base):
        owner = name.removeprefix(METRICS_DIR_PREFIX).split("-", 1)[0]
        if name.startswith(METRICS_DIR_PREFIX) and owner.isdigit() and not _alive(int(owner)):
            shutil.rmtree(os.path.join(base, name), ignore_errors=True)
    path = tempfile.mkdtemp(prefix=f"{METRICS_DIR_PREFIX}{os.getpid()}-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _serve(settings: Settings) -> int:
    import uvicorn

    from bot.app.factory import build_services, create_bolt_app
    from bot.app.server import exit_cleanly_on_sigterm, tune_collector_for_serving
    from bot.app.sweeper import in_a_process_of_its_own, in_process
    from bot.app.zendesk_qa_settings import zendesk_qa_connection
    from handlers.http import create_web_app

    exit_cleanly_on_sigterm()
    zendesk_qa = zendesk_qa_connection(settings.org_file)  # a mistake in it stops serve, not only its sweeper
    services = build_services(settings, SystemClock())
    if settings.org_file:
        imported = _import_org(services.db, settings.org_file, services.slack)
        if imported != 0:
            print("coachloop: not started, because the org file was not imported.", file=sys.stderr)
            return imported
    bolt_app = create_bolt_app(services)
    if settings.sweeps == "process":
        stop_sweeps = in_a_process_of_its_own(services)
    else:
        stop_sweeps = in_process(services, zendesk_qa)
    if zendesk_qa is not None:
        print(f"polling Zendesk QA workspace(s) {', '.join(zendesk_qa.workspaces)}")
    socket_handler = None
    if settings.slack_app_token:
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        socket_handler = SocketModeHandler(bolt_app, settings.slack_app_token)
        socket_handler.connect()
        print("Socket Mode connected; the QA webhook and ops endpoints stay on HTTP.")
    tune_collector_for_serving()
    print(f"coachloop listening on http://{settings.host}:{settings.port}")
    try:
        uvicorn.run(
            create_web_app(services, bolt_app),
            host=settings.host,
            port=settings.port,
            log_config=None,  # keep coachloop's handler (LOG_FORMAT) for uvicorn's lines too
            # A line per request costs the event loop more than a score's own line: each accepted score
            # logs its evaluation and status, each refused one why (handlers.ingest).
            access_log=False,
        )
    finally:
        stop_sweeps()  # a sweep in flight finishes, recording what it sent
        if socket_handler is not None:
            socket_handler.close()
    return 0


def cmd_sweeper(args: argparse.Namespace) -> int:
    from bot.app.server import exit_cleanly_on_sigterm
    from bot.app.sweeper import run_sweeper

    if not args.stdin_wakes:
        exit_cleanly_on_sigterm()
    return run_sweeper(load_settings(), stdin_wakes=args.stdin_wakes)


def _import_org(db: object, path: str, slack: object | None) -> int:
    from bot.channels import resolve_channels
    from bot.org import OrgFileError, import_org, parse_org
    from handlers.directory import SlackChannels, SlackDirectory
    from storage.db import Database

    assert isinstance(db, Database)
    try:
        with open(path, encoding="utf-8") as fh:
            spec = parse_org(fh.read(), source=os.path.basename(path))
    except OSError as exc:
        print(f"cannot read {path}: {exc.strerror}", file=sys.stderr)
        return 2
    except OrgFileError as exc:
        print(f"{path} was not imported; nothing changed:", file=sys.stderr)
        for line in exc.errors:
            print(f"  {line}", file=sys.stderr)
        return 2
    directory = SlackDirectory(slack) if slack is not None else None  # type: ignore[arg-type]
    spec, channel_problems = resolve_channels(spec, SlackChannels(slack) if slack is not None else None)  # type: ignore[arg-type]
    report = import_org(db, spec, directory, SystemClock().now())
    for line in report.lines() + channel_problems:
        print(line)
    if directory is None:
        print(
            "SLACK_BOT_TOKEN is not set: Slack ids were not looked up (give slack_id in the file, or set it)."
        )
    return 0


def cmd_org_import(args: argparse.Namespace) -> int:
    from bot.app.config import Settings
    from bot.app.services import slack_client
    from storage.db import Database

    db = Database(_database())
    db.require_current_schema()
    token = os.environ.get("SLACK_BOT_TOKEN", "").strip()
    slack = None
    if token:
        partial = Settings(
            database_url=db.url,
            slack_bot_token=token,
            slack_signing_secret="",
            qa_webhook_secret="",
            slack_api_url=os.environ.get("SLACK_API_URL") or None,
        )
        slack = slack_client(partial, interactive=True)
    return _import_org(db, args.file, slack)


def cmd_sweep(args: argparse.Namespace) -> int:
    from bot.app.factory import build_services
    from scheduler.sweeps import Sweeps

    services = build_services(load_settings(), SystemClock())
    report = Sweeps(services).run_once()
    print(report.summary())
    return 0


def _team_calendar(name: str):  # type: ignore[no-untyped-def]
    from bot.team_calendar import calendar_for
    from storage.db import Database
    from storage.queries import team_by_name

    db = Database(_database())
    db.require_current_schema()
    with db.unit_of_work() as session:
        team = team_by_name(session, name)
        if team is None:
            raise ConfigError(
                f"no team named {name!r}; import the org file first (coachloop org import org.yml)"
            )
        return team, calendar_for(team)


def cmd_deadline(args: argparse.Namespace) -> int:
    from bot.timers_explain import explain_deadline

    try:
        landed = datetime.fromisoformat(args.landed.replace("Z", "+00:00"))
    except ValueError:
        print("--landed must be an ISO 8601 time with offset, e.g. 2026-11-27T16:00:00Z", file=sys.stderr)
        return 2
    if landed.tzinfo is None:
        print("--landed needs a UTC offset (Z or +01:00)", file=sys.stderr)
        return 2
    team, cal = _team_calendar(args.team)
    print(explain_deadline(cal, landed, team.window_days))
    return 0


def cmd_calendar(args: argparse.Namespace) -> int:
    team, cal = _team_calendar(args.team)
    print(f"Closed days for team {team.name} in {args.year} ({cal.timezone}):")
    for day, reason in cal.closed_days(args.year):
        if reason not in ("Saturday", "Sunday") or args.all:
            print(f"  {day.isoformat()} {day.strftime('%a')}  {reason}")
    if not args.all:
        print("  (weekends not listed; --all lists them too)")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from bot import report
    from bot.app.console import stderr_console
    from bot.measures_data import parse_period
    from storage.db import Database

    if args.definitions:
        print(report.definitions_text())
        return 0
    if args.by == "week" and args.format != "csv":
        raise ConfigError("--by week is for --format csv (one row per team per week)")
    now = SystemClock().now()
    try:
        period = parse_period(args.period, now)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    db = Database(_database())
    db.require_current_schema()
    err = stderr_console()
    with db.unit_of_work() as session, Progress(console=err, transient=True) as progress:
        task = progress.add_task("measuring", total=None)
        try:
            text, rows = report.render(
                session,
                period,
                now,
                args.format,
                team=args.team,
                by=args.by,
                progress=lambda name: progress.update(task, description=f"measuring {name}"),
            )
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    if args.format == "table":
        table = Table(title=f"Coaching from QA, {args.period}")
        for _, label in report.COLUMNS:
            table.add_column(label)
        for row in rows:
            cells = row.cells()
            table.add_row(*(cells[key] for key, _ in report.COLUMNS))
        leaders = Table(title="Each leader's coaching practice")
        for _, label in report.PRACTICE_COLUMNS:
            leaders.add_column(label)
        with db.unit_of_work() as session:
            for lp in report.practice(session, period, args.team):
                cells = report.practice_cells(lp)
                leaders.add_row(*(cells[key] for key, _ in report.PRACTICE_COLUMNS))
        if args.out:
            with open(args.out, "w", encoding="utf-8") as fh:
                Console(file=fh, width=250).print(table, leaders)
        else:
            Console(width=250).print(table, leaders)
        return 0
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text)
        print(f"wrote {args.out}")
    else:
        sys.stdout.write(text)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from bot.app.demo import run_demo
    from bot.app.demo_history import run_history

    logging.getLogger().setLevel(logging.WARNING)  # the demo prints what people see; logs would drown it
    return run_history(args.weeks, keep=args.db) if args.weeks else run_demo(keep=args.db)


def cmd_import(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bot.app.import_cmd import print_template, run_import
    from storage.db import Database

    if args.template:
        return print_template()
    if not args.file:
        raise ConfigError("name the file to import: coachloop import scores.csv --map map.yml")
    db = Database(_database())
    db.create_schema()
    return run_import(
        db,
        Path(args.file),
        Path(args.map) if args.map else None,
        SystemClock().now(),
        dry_run=args.dry_run,
        skip_invalid=args.skip_invalid,
    )


def cmd_connect(args: argparse.Namespace) -> int:
    from bot.app.connect import check_zendesk_qa

    if not args.check:
        raise ConfigError("say what to do: coachloop connect zendesk-qa --check")
    return check_zendesk_qa(args.org or os.environ.get("COACHLOOP_ORG", "").strip() or None)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coachloop", description="QA scores into coaching conversations, in Slack."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the Slack app, the QA webhook and the sweeps").set_defaults(
        func=cmd_serve
    )
    org = sub.add_parser("org", help="teams, people and calendars").add_subparsers(
        dest="org_command", required=True
    )
    imp = org.add_parser("import", help="create or update teams and people from an org file")
    imp.add_argument("file")
    imp.set_defaults(func=cmd_org_import)
    sub.add_parser("sweep", help="run every sweep once at the current time and exit").set_defaults(
        func=cmd_sweep
    )
    sweeper = sub.add_parser("sweeper", help="run the sweeps until stopped (serve starts one of its own)")
    sweeper.add_argument("--stdin-wakes", action="store_true", help=argparse.SUPPRESS)
    sweeper.set_defaults(func=cmd_sweeper)
    demo = sub.add_parser("demo", help="run the whole loop against a local stand-in of Slack")
    demo.add_argument("--db", help="keep the demo's SQLite database at this path (for coachloop report)")
    demo.add_argument(
        "--weeks", type=int, choices=range(1, 27), metavar="N", help="simulate N weeks of history"
    )
    demo.set_defaults(func=cmd_demo)
    dl = sub.add_parser("deadline", help="explain a team's coaching deadline for a landing time")
    dl.add_argument("--team", required=True)
    dl.add_argument("--landed", required=True, help="ISO 8601 with offset, e.g. 2026-11-27T16:00:00Z")
    dl.set_defaults(func=cmd_deadline)
    rep = sub.add_parser("report", help="the coaching measures as a table, CSV or a self-contained HTML file")
    rep.add_argument(
        "--period", default="last-4-weeks", help="last-N-weeks, last-week, this-week, this-month, last-month"
    )
    rep.add_argument("--team")
    rep.add_argument("--format", choices=("table", "csv", "html"), default="table")
    rep.add_argument("--out", help="write to this file instead of the terminal")
    rep.add_argument(
        "--by", choices=("period", "week"), default="period", help="CSV: one row per team per week"
    )
    rep.add_argument("--definitions", action="store_true", help="print how each figure is counted and exit")
    rep.set_defaults(func=cmd_report)
    imp_file = sub.add_parser("import", help="import scores from a CSV export (with --map) or a JSONL file")
    imp_file.add_argument("file", nargs="?")
    imp_file.add_argument("--map", help="the mapping file: which CSV column is which field")
    imp_file.add_argument("--template", action="store_true", help="print a commented example mapping")
    imp_file.add_argument("--dry-run", action="store_true", help="check everything; change nothing")
    imp_file.add_argument(
        "--skip-invalid", action="store_true", help="import the valid ones; write the rest beside the file"
    )
    imp_file.set_defaults(func=cmd_import)
    con = sub.add_parser("connect", help="check the connection to a QA platform coachloop pulls from")
    con.add_argument("platform", choices=("zendesk-qa",))
    con.add_argument("--check", action="store_true", help="prove the settings with one call")
    con.add_argument("--org", help="the org file with the platform's section (default $COACHLOOP_ORG)")
    con.set_defaults(func=cmd_connect)
    cal = sub.add_parser("calendar", help="list a team's closed days in a year")
    cal.add_argument("--team", required=True)
    cal.add_argument("--year", type=int, required=True)
    cal.add_argument("--all", action="store_true", help="list weekends too")
    cal.set_defaults(func=cmd_calendar)
    dbcli.register(sub)
    check.register(sub)
    privacycli.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        logs.configure(
            os.environ,
            secrets=[os.environ.get(name, "") for name in logs.SECRET_SETTINGS],
            background=args.func in (cmd_serve, cmd_sweeper),  # the long-running ones
        )
    except ValueError as exc:
        print(f"coachloop: {exc}", file=sys.stderr)
        return 2
    try:
        return int(args.func(args))
    except (ConfigError, SchemaError) as exc:
        print(f"coachloop: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
