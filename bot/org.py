"""The org file: teams, people and calendars. Checked whole before anything is written."""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import TYPE_CHECKING, Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holidays_lib
import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import coaching, coaching_blocks, handover
from bot.calendar import parse_weekdays
from bot.channels import is_channel
from bot.coaching_blocks import parse_blocks
from bot.zendesk_qa import ZendeskQASpec
from storage import queries
from storage.models import Person, Team, TeamAgent, TeamEscalation, TeamQALead
from storage.outbox import audit

if TYPE_CHECKING:
    from storage.db import Database

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass
class PersonSpec:
    email: str
    name: str | None = None
    slack_id: str | None = None
    admin: bool = False
    coaching_blocks: list[str] | None = None


@dataclass
class TeamSpec:
    name: str
    timezone: str
    working_days: str
    day_start: str
    day_end: str
    holiday_country: str | None
    holiday_subdivision: str | None
    closed: list[list[str]]
    window_days: int
    leader: PersonSpec
    escalate_people: list[PersonSpec]
    escalate_channels: list[str]
    agents: list[PersonSpec]
    coaching_blocks: list[str] = field(default_factory=list)
    qa_leads: list[PersonSpec] = field(default_factory=list)
    calibration_sample: int = 3


@dataclass
class OrgSpec:
    teams: list[TeamSpec]
    admins: list[PersonSpec] = field(default_factory=list)
    zendesk_qa: ZendeskQASpec | None = None

    def people(self) -> dict[str, PersonSpec]:
        found: dict[str, PersonSpec] = {}
        for team in self.teams:
            for p in [team.leader, *team.escalate_people, *team.agents, *team.qa_leads]:
                merged = found.setdefault(p.email, PersonSpec(p.email))
                merged.name = merged.name or p.name
                merged.slack_id = merged.slack_id or p.slack_id
        for p in self.admins:
            merged = found.setdefault(p.email, PersonSpec(p.email))
            merged.name = merged.name or p.name
            merged.slack_id = merged.slack_id or p.slack_id
            merged.admin = True
        return found


class OrgFileError(Exception):
    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class SlackUser:
    slack_id: str
    name: str | None
    timezone: str | None


class Directory(Protocol):
    def lookup(self, email: str) -> SlackUser | None:
        """The Slack user with this email, or None when Slack has no such user."""


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.errors: list[str] = []

    def fail(self, node: yaml.Node | None, path: str, message: str) -> None:
        line = node.start_mark.line + 1 if node is not None else 1
        self.errors.append(f"{self.source}:{line}: {path}: {message}")

    def mapping(self, node: yaml.Node | None, path: str) -> dict[str, yaml.Node]:
        if node is None:
            return {}
        if not isinstance(node, yaml.MappingNode):
            self.fail(node, path, "must be a mapping (key: value)")
            return {}
        out: dict[str, yaml.Node] = {}
        for k, v in node.value:
            out[str(k.value)] = v
        return out

    def seq(self, node: yaml.Node | None, path: str) -> list[yaml.Node]:
        if node is None:
            return []
        if not isinstance(node, yaml.SequenceNode):
            self.fail(node, path, "must be a list")
            return []
        return list(node.value)

    def scalar(self, node: yaml.Node | None, path: str) -> str | None:
        if node is None:
            return None
        if not isinstance(node, yaml.ScalarNode):
            self.fail(node, path, "must be a single value")
            return None
        return str(node.value)

    def person(self, node: yaml.Node, path: str, *, leader: bool = False) -> PersonSpec | None:
        m = self.mapping(node, path)
        if not m and isinstance(node, yaml.MappingNode):
            self.fail(node, path, "needs an email")
        if not m:
            return None
        known = {"email", "name", "slack_id"} | ({"coaching_blocks"} if leader else set())
        unknown = set(m) - known
        for key in sorted(unknown):
            self.fail(m[key], f"{path}.{key}", f"is not a known field ({', '.join(sorted(known))})")
        email = (self.scalar(m.get("email"), f"{path}.email") or "").strip().lower()
        if not email:
            self.fail(node, f"{path}.email", "is required")
            return None
        if not EMAIL.match(email):
            self.fail(m["email"], f"{path}.email", f"{email!r} is not an email address")
            return None
        slack_id = self.scalar(m.get("slack_id"), f"{path}.slack_id")
        if slack_id is not None and not re.match(r"^[UW][A-Z0-9]{2,}$", slack_id):
            self.fail(m["slack_id"], f"{path}.slack_id", f"{slack_id!r} is not a Slack user id (U…)")
            slack_id = None
        spec = PersonSpec(email=email, name=self.scalar(m.get("name"), f"{path}.name"), slack_id=slack_id)
        if "coaching_blocks" in m:
            spec.coaching_blocks = self.blocks(m["coaching_blocks"], f"{path}.coaching_blocks")
        return spec

    def blocks(self, node: yaml.Node, path: str) -> list[str]:
        """Weekly coaching blocks such as "tue 14:00-15:00", checked and written one way."""
        raws = [self.scalar(n, f"{path}[{i}]") or "" for i, n in enumerate(self.seq(node, path))]
        try:
            return [b.text() for b in parse_blocks(raws)]
        except ValueError as exc:
            self.fail(node, path, str(exc))
            return []

    def people_list(self, node: yaml.Node | None, path: str) -> list[PersonSpec]:
        """A list of people, each a mapping (email: ...) or a bare email."""
        out = []
        for j, pnode in enumerate(self.seq(node, path)):
            ppath = f"{path}[{j}]"
            if isinstance(pnode, yaml.ScalarNode):
                value = str(pnode.value).strip().lower()
                if EMAIL.match(value):
                    out.append(PersonSpec(email=value))
                else:
                    self.fail(pnode, ppath, f"{value!r} is not an email address")
            elif (person := self.person(pnode, ppath)) is not None:
                out.append(person)
        return out

    def calendar(
        self, m: dict[str, yaml.Node], base: dict[str, Any], path: str, node: yaml.Node
    ) -> dict[str, Any]:
        """Calendar settings of a team, falling back on the defaults."""
        out = dict(base)
        if "timezone" in m:
            tz = self.scalar(m["timezone"], f"{path}.timezone") or ""
            try:
                ZoneInfo(tz)
                out["timezone"] = tz
            except (ZoneInfoNotFoundError, ValueError):
                self.fail(
                    m["timezone"], f"{path}.timezone", f"{tz!r} is not an IANA time zone (e.g. Europe/London)"
                )
        if "working_days" in m:
            names = [self.scalar(n, f"{path}.working_days") or "" for n in self.seq(m["working_days"], path)]
            try:
                days = parse_weekdays(names)
                out["working_days"] = ",".join(
                    ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][d] for d in sorted(days)
                )
            except ValueError as exc:
                self.fail(m["working_days"], f"{path}.working_days", str(exc))
        if "business_hours" in m:
            hours = self.mapping(m["business_hours"], f"{path}.business_hours")
            for key in ("start", "end"):
                raw = self.scalar(hours.get(key), f"{path}.business_hours.{key}")
                try:
                    out[f"day_{key}"] = time.fromisoformat(raw or "").strftime("%H:%M")
                except ValueError:
                    self.fail(
                        hours.get(key) or m["business_hours"],
                        f"{path}.business_hours.{key}",
                        'must be a time such as "09:00"',
                    )
            if out.get("day_start", "") >= out.get("day_end", "~"):
                self.fail(m["business_hours"], f"{path}.business_hours", "start must be before end")
        if "holidays" in m:
            hol = self.mapping(m["holidays"], f"{path}.holidays")
            country = self.scalar(hol.get("country"), f"{path}.holidays.country")
            subdivision = self.scalar(hol.get("subdivision"), f"{path}.holidays.subdivision")
            supported = holidays_lib.list_supported_countries()
            if country and country not in supported:
                self.fail(
                    hol.get("country"),
                    f"{path}.holidays.country",
                    f"{country!r} is not a supported country code",
                )
            elif country and subdivision and subdivision not in supported[country]:
                self.fail(
                    hol.get("subdivision"),
                    f"{path}.holidays.subdivision",
                    f"{subdivision!r} is not a subdivision of {country}",
                )
            out["holiday_country"], out["holiday_subdivision"] = country, subdivision
        if "closed" in m:
            closed = []
            for i, n in enumerate(self.seq(m["closed"], f"{path}.closed")):
                raw = self.scalar(n, f"{path}.closed[{i}]") or ""
                try:
                    closed.append([date.fromisoformat(raw).isoformat(), "Closed"])
                except ValueError:
                    self.fail(n, f"{path}.closed[{i}]", "must be a date such as 2026-12-24")
            out["closed"] = closed
        if "coaching_blocks" in m:
            out["coaching_blocks"] = self.blocks(m["coaching_blocks"], f"{path}.coaching_blocks")
        if "calibration_sample" in m:
            raw = self.scalar(m["calibration_sample"], f"{path}.calibration_sample") or ""
            if raw.isdigit() and 0 <= int(raw) <= 20:
                out["calibration_sample"] = int(raw)
            else:
                self.fail(
                    m["calibration_sample"],
                    f"{path}.calibration_sample",
                    "must be a whole number from 0 to 20 (plans sampled per team each week)",
                )
        if "window_working_days" in m:
            raw = self.scalar(m["window_working_days"], f"{path}.window_working_days") or ""
            if raw.isdigit() and 1 <= int(raw) <= 30:
                out["window_days"] = int(raw)
            else:
                self.fail(
                    m["window_working_days"],
                    f"{path}.window_working_days",
                    "must be a whole number from 1 to 30",
                )
        return out


DEFAULTS: dict[str, Any] = {
    "timezone": "UTC",
    "working_days": "mon,tue,wed,thu,fri",
    "day_start": "09:00",
    "day_end": "17:30",
    "holiday_country": None,
    "holiday_subdivision": None,
    "closed": [],
    "window_days": 5,
    "coaching_blocks": [],
    "calibration_sample": 3,
}
CALENDAR_KEYS = {
    "timezone",
    "working_days",
    "business_hours",
    "holidays",
    "closed",
    "window_working_days",
    "coaching_blocks",
    "calibration_sample",
}


def parse_org(text: str, source: str = "org.yml") -> OrgSpec:
    """Parse and check the whole file; raises OrgFileError with every problem, line-numbered."""
    p = _Parser(source)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        raise OrgFileError([f"{source}:{line}: not valid YAML: {getattr(exc, 'problem', exc)}"]) from None
    top = p.mapping(root, "(file)")
    if root is None or not top:
        raise OrgFileError([f"{source}:1: the file is empty; it needs a 'teams:' list"])
    for key in sorted(set(top) - {"defaults", "teams", "admins", "qa_leads", "zendesk_qa"}):
        p.fail(top[key], key, "is not a known section (defaults, teams, admins, qa_leads, zendesk_qa)")
    zendesk_qa = _zendesk_qa(p, top["zendesk_qa"]) if "zendesk_qa" in top else None
    org_qa_leads = p.people_list(top.get("qa_leads"), "qa_leads")
    base = dict(DEFAULTS)
    if "defaults" in top:
        dm = p.mapping(top["defaults"], "defaults")
        for key in sorted(set(dm) - CALENDAR_KEYS):
            p.fail(dm[key], f"defaults.{key}", "is not a known setting")
        base = p.calendar(dm, base, "defaults", top["defaults"])
    admins = [
        a for i, n in enumerate(p.seq(top.get("admins"), "admins")) if (a := p.person(n, f"admins[{i}]"))
    ]
    teams: list[TeamSpec] = []
    names: set[str] = set()
    agent_team: dict[str, str] = {}
    team_nodes = p.seq(top.get("teams"), "teams")
    if "teams" not in top or not team_nodes:
        p.fail(top.get("teams") or root, "teams", "must list at least one team")
    for i, tnode in enumerate(team_nodes):
        path = f"teams[{i}]"
        tm = p.mapping(tnode, path)
        if not tm:
            continue
        for key in sorted(
            set(tm) - CALENDAR_KEYS - {"name", "team_leader", "escalate_to", "agents", "qa_leads"}
        ):
            p.fail(tm[key], f"{path}.{key}", "is not a known field")
        name = (p.scalar(tm.get("name"), f"{path}.name") or "").strip()
        if not name:
            p.fail(tnode, f"{path}.name", "is required")
        elif name in names:
            p.fail(tm["name"], f"{path}.name", f"team {name!r} appears twice")
        names.add(name)
        cal = p.calendar(tm, base, path, tnode)
        leader = (
            p.person(tm["team_leader"], f"{path}.team_leader", leader=True) if "team_leader" in tm else None
        )
        team_qa = p.people_list(tm.get("qa_leads"), f"{path}.qa_leads")
        qa_leads = {q.email: q for q in [*org_qa_leads, *team_qa]}
        if "team_leader" not in tm:
            p.fail(tnode, f"{path}.team_leader", "is required")
        esc_people: list[PersonSpec] = []
        esc_channels: list[str] = []
        for j, enode in enumerate(p.seq(tm.get("escalate_to"), f"{path}.escalate_to")):
            epath = f"{path}.escalate_to[{j}]"
            if isinstance(enode, yaml.ScalarNode):
                value = str(enode.value).strip()
                if is_channel(value):
                    esc_channels.append(value)
                elif EMAIL.match(value.lower()):
                    esc_people.append(PersonSpec(email=value.lower()))
                else:
                    p.fail(
                        enode,
                        epath,
                        "must be a person (email: ...), an email, or a channel such as "
                        '"#cx-leadership" or C0123ABCD',
                    )
            elif (person := p.person(enode, epath)) is not None:
                esc_people.append(person)
        agents = []
        for j, anode in enumerate(p.seq(tm.get("agents"), f"{path}.agents")):
            agent = p.person(anode, f"{path}.agents[{j}]")
            if agent is None:
                continue
            if agent.email in agent_team:
                p.fail(
                    anode,
                    f"{path}.agents[{j}]",
                    f"{agent.email} is already an agent of team {agent_team[agent.email]!r}",
                )
            agent_team[agent.email] = name
            agents.append(agent)
        if leader is not None and name:
            teams.append(
                TeamSpec(
                    name=name,
                    timezone=cal["timezone"],
                    working_days=cal["working_days"],
                    day_start=cal["day_start"],
                    day_end=cal["day_end"],
                    holiday_country=cal["holiday_country"],
                    holiday_subdivision=cal["holiday_subdivision"],
                    closed=cal["closed"],
                    window_days=cal["window_days"],
                    leader=leader,
                    escalate_people=esc_people,
                    escalate_channels=esc_channels,
                    agents=agents,
                    coaching_blocks=cal["coaching_blocks"],
                    qa_leads=list(qa_leads.values()),
                    calibration_sample=cal["calibration_sample"],
                )
            )
    if p.errors:
        raise OrgFileError(p.errors)
    return OrgSpec(teams=teams, admins=admins, zendesk_qa=zendesk_qa)


def _zendesk_qa(p: _Parser, node: yaml.Node) -> ZendeskQASpec | None:
    m = p.mapping(node, "zendesk_qa")
    numbers = {"poll_every_minutes": (1, 60), "overlap_minutes": (0, 1440), "first_poll_days_back": (0, 365)}
    for key in sorted(set(m) - {"subdomain", "workspaces"} - set(numbers)):
        p.fail(m[key], f"zendesk_qa.{key}", "is not a known setting")
    subdomain = (p.scalar(m.get("subdomain"), "zendesk_qa.subdomain") or "").strip()
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", subdomain):
        p.fail(m.get("subdomain") or node, "zendesk_qa.subdomain", "must be your Zendesk subdomain (acme)")
    workspaces = []
    for i, w in enumerate(p.seq(m.get("workspaces"), "zendesk_qa.workspaces")):
        value = (p.scalar(w, f"zendesk_qa.workspaces[{i}]") or "").strip()
        if not value.isdigit():
            p.fail(w, f"zendesk_qa.workspaces[{i}]", "must be a workspace id (a number, e.g. 12345)")
        workspaces.append(value)
    if not workspaces:
        p.fail(m.get("workspaces") or node, "zendesk_qa.workspaces", "must list at least one workspace id")
    values = {}
    for key, (low, high) in numbers.items():
        if key in m:
            raw = p.scalar(m[key], f"zendesk_qa.{key}") or ""
            if raw.isdigit() and low <= int(raw) <= high:
                values[key] = int(raw)
            else:
                p.fail(m[key], f"zendesk_qa.{key}", f"must be a whole number from {low} to {high}")
    return ZendeskQASpec(subdomain=subdomain, workspaces=tuple(workspaces), **values)


@dataclass
class ImportReport:
    changes: list[str] = field(default_factory=list)
    not_in_slack: list[str] = field(default_factory=list)
    cases_opened: list[int] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = list(self.changes) or ["no changes"]
        out += [f"not found in Slack: {email}" for email in self.not_in_slack]
        if self.cases_opened:
            out.append(f"waiting scores now assigned: {len(self.cases_opened)} case(s) opened or joined")
        return out


def already_in_slack(session: Session, spec: OrgSpec) -> set[str]:
    """Emails in the file whose person the database already knows with a Slack id."""
    emails = [email for email, person in spec.people().items() if not person.slack_id]
    known = (queries.person_by_email(session, email) for email in emails)
    return {p.email for p in known if p is not None and p.slack_id}


def lookup_people(
    spec: OrgSpec, directory: Directory | None, known: Collection[str] = ()
) -> dict[str, SlackUser | None]:
    """Slack ids for everyone not given one and not in `known` (from `already_in_slack`).

    Network calls: run it outside any database transaction, before `apply_org`."""
    found: dict[str, SlackUser | None] = {}
    for email, person in spec.people().items():
        if person.slack_id or email in known:
            continue
        found[email] = directory.lookup(email) if directory is not None else None
    return found


def import_org(db: Database, spec: OrgSpec, directory: Directory | None, now: datetime) -> ImportReport:
    """Look people up in Slack with no transaction open, then write under the "org-import" lock, so
    that replicas starting together import one after the other."""
    with db.unit_of_work() as session:
        known = already_in_slack(session, spec)
    found = lookup_people(spec, directory, known)
    with db.exclusive("org-import"), db.unit_of_work() as session:
        return apply_org(session, spec, found, now)


def apply_org(
    session: Session,
    spec: OrgSpec,
    slack: dict[str, SlackUser | None],
    now: datetime,
    actor: str = "org-import",
) -> ImportReport:
    """Create or update teams and people to match the file (idempotent)."""
    report = ImportReport()
    org_before = handover.snapshot(session)
    people: dict[str, Person] = {}
    for email, ps in spec.people().items():
        person = queries.person_by_email(session, email)
        user = slack.get(email)
        if person is None:
            person = Person(email=email, name="", is_admin=False)
            session.add(person)
            report.changes.append(f"added person {email}")
        before = (person.name, person.slack_id, person.timezone, person.is_admin)
        person.name = (
            ps.name or person.name or (user.name if user and user.name else "") or email.split("@")[0]
        )
        if ps.slack_id:
            person.slack_id = ps.slack_id
        elif user is not None:
            person.slack_id = user.slack_id
            person.timezone = user.timezone or person.timezone
        person.is_admin = ps.admin
        if person.slack_id != before[1]:
            person.dm_channel = None  # the conversation was with the other account
        if email in slack and slack[email] is None and not person.slack_id:
            report.not_in_slack.append(email)
        if person.id is not None and before != (
            person.name,
            person.slack_id,
            person.timezone,
            person.is_admin,
        ):
            report.changes.append(f"updated person {email}")
        people[email] = person
    session.flush()

    for ts in spec.teams:
        team = queries.team_by_name(session, ts.name)
        values = {
            "leader_id": people[ts.leader.email].id,
            "timezone": ts.timezone,
            "working_days": ts.working_days,
            "day_start": ts.day_start,
            "day_end": ts.day_end,
            "holiday_country": ts.holiday_country,
            "holiday_subdivision": ts.holiday_subdivision,
            "closed_dates": ts.closed,
            "window_days": ts.window_days,
            "escalation_channels": ts.escalate_channels,
            "coaching_blocks": ts.coaching_blocks,
            "calibration_size": ts.calibration_sample,
        }
        if team is None:
            team = Team(name=ts.name, **values)
            session.add(team)
            session.flush()
            report.changes.append(f"created team {ts.name}")
        else:
            changed = [k for k, v in values.items() if getattr(team, k) != v]
            for k in changed:
                setattr(team, k, values[k])
            if changed:
                report.changes.append(f"updated team {ts.name}: {', '.join(changed)}")
        _sync_members(session, team, TeamAgent, {people[a.email].id for a in ts.agents}, report, "agent")
        _sync_members(
            session,
            team,
            TeamEscalation,
            {people[e.email].id for e in ts.escalate_people},
            report,
            "escalation contact",
        )
        _sync_members(session, team, TeamQALead, {people[q.email].id for q in ts.qa_leads}, report, "QA lead")
    own_blocks: dict[str, list[str] | None] = {}
    for ts in spec.teams:
        if own_blocks.get(ts.leader.email) is None:
            own_blocks[ts.leader.email] = ts.leader.coaching_blocks
    for email, blocks in own_blocks.items():
        if coaching_blocks.set_org_blocks(session, people[email], blocks):
            report.changes.append(f"coaching blocks of {email}: {', '.join(blocks or []) or 'the team’s'}")
    session.flush()
    report.changes += handover.reorganise(session, org_before, now, actor)
    audit(session, now, actor, "org_imported", changes=len(report.changes))
    for ts in spec.teams:
        for a in ts.agents:
            agent = people[a.email]
            for ev in queries.unassigned_evaluations(session, a.email):
                # Kept before the org file named the agent: the window starts now.
                ev.agent_id, ev.window_from = agent.id, now
                session.flush()
                case, status = coaching.attach_to_case(session, ev, agent, now, actor)
                ev.intake_status = status
                report.cases_opened.append(case.id)
    session.expire_all()
    return report


def _sync_members(
    session: Session,
    team: Team,
    model: type[TeamAgent] | type[TeamEscalation] | type[TeamQALead],
    wanted: set[int],
    report: ImportReport,
    label: str,
) -> None:
    rows: list[TeamAgent | TeamEscalation | TeamQALead] = list(
        session.scalars(select(model).where(model.team_id == team.id))
    )
    current = {row.person_id: row for row in rows}
    for pid in wanted - set(current):
        if model is TeamAgent:
            session.query(TeamAgent).filter_by(person_id=pid).delete()
        session.add(model(team_id=team.id, person_id=pid))
        report.changes.append(f"team {team.name}: added {label} {session.get(Person, pid).email}")  # type: ignore[union-attr]
    for pid in set(current) - wanted:
        session.delete(current[pid])
        report.changes.append(f"team {team.name}: removed {label} {session.get(Person, pid).email}")  # type: ignore[union-attr]
    session.flush()
