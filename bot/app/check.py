"""`coachloop check`: everything an operator should know before launch and after every change.

Each check prints `ok` with what it found, or `PROBLEM` with what is wrong and how to fix it; the
command exits 1 when any problem was found (2 for a bad command line), 0 otherwise.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from typing import IO, Any

import yaml
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from bot.app.config import ConfigError, Settings, load_settings
from bot.app.services import slack_client
from bot.app.zendesk_qa_settings import zendesk_qa_connection
from bot.clock import Clock, SystemClock
from bot.org import OrgFileError, OrgSpec, TeamSpec, parse_org
from bot.team_calendar import calendar_for
from connectors.zendesk_qa import ExportApiError, ZendeskQAClient
from storage.db import Database
from storage.models import Team
from storage.schema import SchemaError, status


@dataclass
class Finding:
    area: str
    text: str
    fix: str | None = None  # None: fine

    @property
    def ok(self) -> bool:
        return self.fix is None


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)

    def ok(self, area: str, text: str) -> None:
        self.findings.append(Finding(area, text))

    def problem(self, area: str, text: str, fix: str) -> None:
        self.findings.append(Finding(area, text, fix))

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if not f.ok]

    def write(self, out: IO[str]) -> None:
        for f in self.findings:
            if f.ok:
                print(f"ok       {f.area}: {f.text}", file=out)
            else:
                print(f"PROBLEM  {f.area}: {f.text}\n         fix: {f.fix}", file=out)
        count = len(self.problems)
        print(
            f"\n{count} problem{'s' if count != 1 else ''} found." if count else "\nNo problems found.",
            file=out,
        )


def manifest_scopes() -> list[str]:
    manifest = yaml.safe_load(resources.files("bot.app").joinpath("manifest.yml").read_text())
    return list(manifest["oauth_config"]["scopes"]["bot"])


# -- settings ------------------------------------------------------------------------------------


def check_settings(env: Mapping[str, str], report: Report) -> None:
    token = env.get("SLACK_BOT_TOKEN", "").strip()
    if not token:
        report.problem(
            "SLACK_BOT_TOKEN",
            "is not set",
            "set it to the Bot User OAuth Token (xoxb-…) from OAuth & Permissions",
        )
    elif not token.startswith("xoxb-"):
        report.problem(
            "SLACK_BOT_TOKEN", "is not a bot token", "use the Bot User OAuth Token, which starts with xoxb-"
        )
    secret = env.get("SLACK_SIGNING_SECRET", "").strip()
    if not re.fullmatch(r"[0-9a-f]{32}", secret):
        report.problem(
            "SLACK_SIGNING_SECRET",
            "is not set" if not secret else "is not a Slack signing secret (32 hexadecimal characters)",
            "copy the Signing Secret from the app's Basic Information page (not the client secret)",
        )
    else:
        report.ok("SLACK_SIGNING_SECRET", "is well formed")
    webhook = env.get("QA_WEBHOOK_SECRET", "").strip()
    problem = _webhook_secret_problem(webhook)
    if problem:
        report.problem(
            "QA_WEBHOOK_SECRET",
            problem,
            "use the Standard Webhooks secret shared with the QA platform: whsec_ then base64 of 24 to 64 "
            'random bytes (make one with: python -c "import base64,os;'
            "print('whsec_'+base64.b64encode(os.urandom(32)).decode())\")",
        )
    else:
        report.ok("QA_WEBHOOK_SECRET", "is well formed")
    url = env.get("DATABASE_URL", "").strip() or "sqlite:///coachloop.db"
    try:
        make_url(url)
    except ArgumentError:
        report.problem(
            "DATABASE_URL",
            "is not a database URL",
            "use e.g. postgresql+psycopg://user@host:5432/coachloop (or sqlite:///coachloop.db)",
        )
    reported = {f.area for f in report.findings if not f.ok}
    try:
        load_settings(env)
    except ConfigError as exc:  # the rest of the settings (ports, URLs, files) as serve reads them
        name = str(exc).split(" ", 1)[0]
        if name not in reported:
            report.problem(name, str(exc), "correct it in the environment `coachloop serve` runs with")


def _webhook_secret_problem(secret: str) -> str | None:
    if not secret:
        return "is not set"
    if not secret.startswith("whsec_"):
        return "does not start with whsec_"
    try:
        raw = base64.b64decode(secret[len("whsec_") :], validate=True)
    except (binascii.Error, ValueError):
        return "is not base64 after whsec_"
    if not 24 <= len(raw) <= 64:
        return f"holds {len(raw)} bytes; Standard Webhooks secrets hold 24 to 64"
    return None


# -- Slack -----------------------------------------------------------------------------------------


def check_slack(client: WebClient, report: Report) -> set[str] | None:
    """auth.test and the granted scopes; the scopes when the token works, else None."""
    try:
        answer = client.auth_test()
    except SlackApiError as exc:
        error = exc.response.get("error")
        report.problem(
            "Slack token",
            f"auth.test refused the token ({error})",
            "copy the Bot User OAuth Token again (OAuth & Permissions); reinstall the app if it was revoked",
        )
        return None
    except OSError as exc:
        report.problem(
            "Slack token",
            f"Slack's API did not answer ({type(exc).__name__})",
            "check the network (or SLACK_API_URL)",
        )
        return None
    report.ok(
        "Slack token", f"works: bot {answer.get('user')} ({answer.get('user_id')}) in {answer.get('team')}"
    )
    granted_header = answer.headers.get("x-oauth-scopes") or answer.headers.get("X-OAuth-Scopes")
    if granted_header is None:
        report.problem(
            "Slack scopes", "auth.test did not list the granted scopes", "check that the token is a bot token"
        )
        return set()
    granted = {s.strip() for s in granted_header.split(",") if s.strip()}
    missing = [s for s in manifest_scopes() if s not in granted]
    if missing:
        report.problem(
            "Slack scopes",
            f"the token lacks {', '.join(missing)}",
            "add them under OAuth & Permissions (or paste manifest.yml again) and reinstall the app",
        )
    else:
        report.ok("Slack scopes", "the token has every scope manifest.yml asks for")
    return granted


def check_people(client: WebClient, spec: OrgSpec, report: Report) -> None:
    roles: dict[str, str] = {}
    for team in spec.teams:
        roles.setdefault(team.leader.email, f"leader of {team.name}")
        for p in team.escalate_people:
            roles.setdefault(p.email, f"escalation contact of {team.name}")
        for p in team.agents:
            roles.setdefault(p.email, f"agent in {team.name}")
    for p in spec.admins:
        roles.setdefault(p.email, "admin")
    missing = 0
    for email, person in sorted(spec.people().items()):
        try:
            if person.slack_id:
                user = client.users_info(user=person.slack_id)["user"]
                email_in_slack = ((user.get("profile") or {}).get("email") or "").lower()
                if email_in_slack and email_in_slack != email:
                    missing += 1
                    report.problem(
                        "people",
                        f"{email} ({roles.get(email)}): Slack user {person.slack_id} is {email_in_slack}",
                        "correct the slack_id (or the email) in the org file",
                    )
                    continue
            else:
                user = client.users_lookupByEmail(email=email)["user"]
        except SlackApiError as exc:
            error = exc.response.get("error")
            if error in ("users_not_found", "user_not_found"):
                missing += 1
                report.problem(
                    "people",
                    f"{email} ({roles.get(email)}) is not a Slack user in this workspace",
                    "correct the email (or slack_id) in the org file, or invite the person to Slack",
                )
                continue
            report.problem(
                "people", f"looking up {email} failed ({error})", "run the check again; see the Slack error"
            )
            continue
        if user.get("deleted"):
            missing += 1
            report.problem(
                "people",
                f"{email} ({roles.get(email)}) has been deactivated in Slack",
                "remove them from the org file (or reassign their team), then `coachloop org import`",
            )
    if not missing:
        report.ok("people", f"all {len(spec.people())} people in the org file are Slack users")


def _channels(client: WebClient) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    cursor = None
    while True:
        page = client.conversations_list(
            types="public_channel,private_channel", exclude_archived=False, limit=1000, cursor=cursor
        )
        for channel in page.get("channels") or []:
            found[channel["name"]] = channel
        cursor = (page.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            return found


def check_channels(client: WebClient, spec: OrgSpec, granted_public_write: bool, report: Report) -> None:
    wanted = sorted({(c, t.name) for t in spec.teams for c in t.escalate_channels})
    if not wanted:
        return
    try:
        channels = _channels(client)
    except SlackApiError as exc:
        report.problem(
            "channels",
            f"could not list channels ({exc.response.get('error')})",
            "grant channels:read and groups:read (manifest.yml) and reinstall the app",
        )
        return
    bad = 0
    for ref, team in wanted:
        name = ref.lstrip("#")
        channel = channels.get(name)
        if channel is None:
            bad += 1
            report.problem(
                "channels",
                f"{ref} (escalations of {team}) does not exist, or is private and the bot is not in it",
                f"create {ref} or correct its name in the org file; for a private one, /invite @coachloop",
            )
        elif channel.get("is_archived"):
            bad += 1
            report.problem(
                "channels",
                f"{ref} (escalations of {team}) is archived",
                f"unarchive {ref} or name another channel",
            )
        elif not channel.get("is_member") and (channel.get("is_private") or not granted_public_write):
            bad += 1
            report.problem(
                "channels",
                f"{ref} (escalations of {team}): the bot is not a member, so it cannot post there",
                f"in Slack, /invite @coachloop in {ref}",
            )
    if not bad:
        report.ok("channels", f"the bot can post in every escalation channel ({len(wanted)})")


# -- database, calendars, connectors ----------------------------------------------------------------


def check_database(url: str, report: Report) -> None:
    parsed = make_url(url) if _parses(url) else None
    sqlite_file = parsed.database if parsed is not None and parsed.get_backend_name() == "sqlite" else None
    if sqlite_file not in (None, "", ":memory:") and not os.path.isfile(str(sqlite_file)):
        # (connecting would create an empty file)
        report.problem("database", f"there is no SQLite file at {sqlite_file}", "run `coachloop db upgrade`")
        return
    try:
        db = Database(url)
    except (ArgumentError, SQLAlchemyError, ValueError):
        return  # reported with the settings
    try:
        db.ping()
        state = status(db)
    except SchemaError as exc:
        report.problem("database", str(exc), "see above")
        return
    except SQLAlchemyError as exc:
        report.problem(
            "database",
            f"cannot be reached ({type(exc).__name__}: {str(getattr(exc, 'orig', exc)).splitlines()[0]})",
            "check DATABASE_URL, that the server runs and that this host may connect",
        )
        return
    finally:
        db.dispose()
    problem = state.problem()
    if problem:
        report.problem("database", problem.split(": ", 1)[0], problem.split(": ", 1)[-1])
    else:
        report.ok("database", f"reachable and at revision {state.current}")


def _parses(url: str) -> bool:
    try:
        make_url(url)
    except ArgumentError:
        return False
    return True


def _team_of(spec: TeamSpec) -> Team:
    return Team(
        name=spec.name,
        timezone=spec.timezone,
        working_days=spec.working_days,
        day_start=spec.day_start,
        day_end=spec.day_end,
        holiday_country=spec.holiday_country,
        holiday_subdivision=spec.holiday_subdivision,
        closed_dates=spec.closed,
        window_days=spec.window_days,
    )


def check_calendars(spec: OrgSpec, now: datetime, report: Report) -> None:
    for team_spec in spec.teams:
        try:
            cal = calendar_for(_team_of(team_spec))
            due = cal.local(cal.deadline(now, team_spec.window_days))
            holidays = cal.closed_days(now.year)
        except Exception as exc:  # noqa: BLE001 - any failure to build the calendar is the finding
            report.problem(
                "calendar",
                f"team {team_spec.name}: the calendar does not load ({type(exc).__name__}: {exc})",
                "correct the team's timezone, holidays or working_days in the org file",
            )
            continue
        public = sum(1 for _, reason in holidays if reason not in ("Saturday", "Sunday"))
        report.ok(
            "calendar",
            f"team {team_spec.name} ({team_spec.timezone}, {team_spec.working_days}, "
            f"holidays {team_spec.holiday_country or 'none'}"
            f"{'/' + team_spec.holiday_subdivision if team_spec.holiday_subdivision else ''}, "
            f"{public} closed days in {now.year}): a score landing now is due {due:%a %d %b %Y %H:%M %Z}",
        )


def load_org(path: str | None, report: Report) -> OrgSpec | None:
    if not path:
        report.problem(
            "org file",
            "none given, so people, channels and calendars were not checked",
            "set COACHLOOP_ORG or pass --org org.yml",
        )
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            spec = parse_org(fh.read(), source=os.path.basename(path))
    except OSError as exc:
        report.problem("org file", f"cannot read {path}: {exc.strerror}", "give the path of the org file")
        return None
    except OrgFileError as exc:
        for line in exc.errors:
            report.problem("org file", line, "correct this line of the org file")
        return None
    report.ok("org file", f"{path}: {len(spec.teams)} teams, {len(spec.people())} people")
    return spec


def check_connectors(
    env: Mapping[str, str], org_path: str | None, spec: OrgSpec | None, report: Report
) -> None:
    """Each configured score connector answers with the token it was given and sees its workspaces."""
    if spec is None or spec.zendesk_qa is None:
        report.ok("connectors", "none configured (scores arrive by the webhook or by import)")
        return
    try:
        connection = zendesk_qa_connection(org_path, env)
    except ConfigError as exc:
        report.problem("Zendesk QA", str(exc).split(":")[0], str(exc))
        return
    assert connection is not None
    try:
        found = {
            str(w.get("id"))
            for w in ZendeskQAClient(connection.base_url, connection.token, retries=0).workspaces()
        }
    except ExportApiError as exc:
        report.problem(
            "Zendesk QA",
            f"{connection.base_url} refused or did not answer ({exc})",
            "check ZENDESK_QA_TOKEN and the subdomain in the org file's zendesk_qa section",
        )
        return
    missing = [w for w in connection.workspaces if w not in found]
    for workspace in missing:
        report.problem(
            "Zendesk QA",
            f"workspace {workspace} is not among those the token can read",
            "check the workspace id (Zendesk QA: Settings > Workspaces) or the token's access",
        )
    if not missing:
        report.ok(
            "Zendesk QA",
            f"answers at {connection.base_url}; {len(connection.workspaces)} workspace(s) readable",
        )


def run_check(
    env: Mapping[str, str], out: IO[str], *, org_path: str | None = None, clock: Clock | None = None
) -> int:
    clock = clock or SystemClock()
    report = Report()
    check_settings(env, report)
    check_database(env.get("DATABASE_URL", "").strip() or "sqlite:///coachloop.db", report)
    spec = load_org(org_path or env.get("COACHLOOP_ORG", "").strip() or None, report)
    token = env.get("SLACK_BOT_TOKEN", "").strip()
    if token:
        settings = Settings(
            database_url="",
            slack_bot_token=token,
            slack_signing_secret="",
            qa_webhook_secret="",
            slack_api_url=_api_url(env),
        )
        client = slack_client(settings, interactive=True)
        granted = check_slack(client, report)
        if granted is not None and spec is not None:
            check_people(client, spec, report)
            check_channels(client, spec, "chat:write.public" in granted, report)
    if spec is not None:
        check_calendars(spec, clock.now(), report)
    check_connectors(env, org_path or env.get("COACHLOOP_ORG", "").strip() or None, spec, report)
    report.write(out)
    return 1 if report.problems else 0


def cmd_check(args: argparse.Namespace) -> int:
    return run_check(os.environ, sys.stdout, org_path=args.org)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    check = sub.add_parser(
        "check", help="check settings, Slack token and scopes, database, org file, channels and calendars"
    )
    check.add_argument("--org", help="the org file to check (default: COACHLOOP_ORG)")
    check.set_defaults(func=cmd_check)


def _api_url(env: Mapping[str, str]) -> str | None:
    url = env.get("SLACK_API_URL", "").strip() or None
    return url if url is None or url.endswith("/") else url + "/"
