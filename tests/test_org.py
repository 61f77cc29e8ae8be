"""The org file: checked whole, line-numbered errors, idempotent import."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.org import OrgFileError, SlackUser, import_org, parse_org
from storage.db import Database
from storage.models import Person, Team
from tests.conftest import sample_org

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


class FakeDirectory:
    """Slack's users.lookupByEmail as a dict; the end-to-end tests use the stand-in over HTTP."""

    def __init__(self, users: dict[str, SlackUser]) -> None:
        self.users = users
        self.asked: list[str] = []

    def lookup(self, email: str) -> SlackUser | None:
        self.asked.append(email)
        return self.users.get(email)


DIRECTORY = {
    "priya.shah@example.com": SlackUser("U0PRIYA", "Priya Shah", "Europe/London"),
    "dana.okafor@example.com": SlackUser("U0DANA", "Dana Okafor", "Europe/London"),
    "ana.ruiz@example.com": SlackUser("U0ANA", "Ana Ruiz", "Europe/Madrid"),
    "marcus.bell@example.com": SlackUser("U0MARCUS", "Marcus Bell", "America/New_York"),
}


def do_import(db: Database, text: str, directory: FakeDirectory) -> list[str]:
    return import_org(db, parse_org(text), directory, NOW).lines()


def test_import_creates_teams_and_people_then_is_idempotent(db: Database) -> None:
    directory = FakeDirectory(DIRECTORY)
    lines = do_import(db, sample_org(), directory)
    assert "created team Billing" in lines and "created team Retentions" in lines
    assert "not found in Slack: lena.ito@example.com" in lines
    assert "tom.hale@example.com" not in directory.asked  # slack_id given in the file
    with db.unit_of_work() as s:
        ana = s.query(Person).filter_by(email="ana.ruiz@example.com").one()
        assert (ana.slack_id, ana.timezone) == ("U0ANA", "Europe/Madrid")
        retentions = s.query(Team).filter_by(name="Retentions").one()
        assert retentions.timezone == "America/New_York" and retentions.escalation_channels == [
            "#cx-leadership"
        ]
        assert retentions.holiday_country == "US" and retentions.holiday_subdivision is None
        billing = s.query(Team).filter_by(name="Billing").one()
        assert billing.closed_dates == [["2026-12-24", "Closed"]] and billing.day_end == "17:30"
        assert [p.email for p in billing.escalation_people] == ["dana.okafor@example.com"]
    directory.asked.clear()
    again = do_import(db, sample_org(), directory)
    assert again[0] == "no changes"
    assert directory.asked == ["lena.ito@example.com", "ops@example.com"]  # only the ones Slack did not know


def test_moving_an_agent_between_teams(db: Database) -> None:
    do_import(db, sample_org(), FakeDirectory(DIRECTORY))
    moved = (
        sample_org()
        .replace("      - {email: ana.ruiz@example.com, name: Ana Ruiz}\n", "")
        .replace(
            "agents: [{email: lena.ito@example.com}]",
            "agents: [{email: lena.ito@example.com}, {email: ana.ruiz@example.com}]",
        )
    )
    lines = do_import(db, moved, FakeDirectory(DIRECTORY))
    assert "team Billing: removed agent ana.ruiz@example.com" in lines
    assert "team Retentions: added agent ana.ruiz@example.com" in lines


BROKEN = """\
defaults:
  timezone: Europe/Londn
teams:
  - name: Billing
    team_leader: {email: priya.shah@example.com}
    business_hours: {start: "18:00", end: "09:00"}
    holidays: {country: XX}
    agents:
      - {email: ana.ruiz@example.com}
      - {name: No Email}
      - {email: not-an-email}
  - name: Billing
    window_working_days: 0
    team_leader: {email: marcus.bell@example.com}
    agents: [{email: ana.ruiz@example.com}]
"""


def test_a_broken_file_is_refused_whole_with_line_numbers(db: Database) -> None:
    with pytest.raises(OrgFileError) as err:
        parse_org(BROKEN, "org.yml")
    errors = err.value.errors
    expected = [
        "org.yml:2: defaults.timezone: 'Europe/Londn' is not an IANA time zone",
        "org.yml:6: teams[0].business_hours: start must be before end",
        "org.yml:7: teams[0].holidays.country: 'XX' is not a supported country code",
        "org.yml:10: teams[0].agents[1].email: is required",
        "org.yml:11: teams[0].agents[2].email: 'not-an-email' is not an email address",
        "org.yml:12: teams[1].name: team 'Billing' appears twice",
        "org.yml:13: teams[1].window_working_days: must be a whole number from 1 to 30",
        "org.yml:15: teams[1].agents[0]: ana.ruiz@example.com is already an agent of team 'Billing'",
    ]
    for line in expected:
        assert any(e.startswith(line) for e in errors), (line, errors)
    with db.unit_of_work() as s:
        assert s.query(Team).count() == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        ("teams: [\n  {name: x\n", "not valid YAML"),
        ("teams: []\n", "must list at least one team"),
        ("teems: []\n", "teems: is not a known section"),
        ("teams:\n  - name: A\n", "teams[0].team_leader: is required"),
    ],
)
def test_small_mistakes(text: str, message: str) -> None:
    with pytest.raises(OrgFileError) as err:
        parse_org(text)
    assert any(message in e for e in err.value.errors), err.value.errors
