"""Coaching blocks: how they are written, when they fall, and the calendar file a leader adds."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import icalendar
import pytest

from bot.calendar import HolidayCalendar, WorkCalendar
from bot.coaching_blocks import BlockSpec, calendar_file, occurrences, parse_block, parse_blocks, parse_lines
from bot.org import OrgFileError, parse_org
from storage.models import Person

LONDON = WorkCalendar(
    timezone="Europe/London",
    working_weekdays=frozenset(range(5)),
    start=time(9),
    end=time(17, 30),
    holidays=HolidayCalendar("GB", "ENG", ((date(2026, 12, 24), "Closed"),)),
)


def test_a_block_is_a_weekday_and_two_times() -> None:
    assert parse_block("tue 14:00-15:00") == BlockSpec(1, time(14), time(15))
    assert parse_block("Thursday 9:30 - 10:00").text() == "thu 09:30-10:00"
    for bad, says in [
        ("tuesday afternoon", "write a weekday and two times"),
        ("xyz 14:00-15:00", "is not a weekday"),
        ("tue 15:00-14:00", "must end after it starts"),
        ("tue 25:00-26:00", "HH:MM"),
    ]:
        with pytest.raises(ValueError, match=says):
            parse_block(bad)
    with pytest.raises(ValueError, match="overlap"):
        parse_blocks(["tue 14:00-15:00", "tue 14:30-16:00"])
    assert [b.text() for b in parse_lines("thu 10:00-10:30\ntue 14:00-15:00, ")] == [
        "tue 14:00-15:00",
        "thu 10:00-10:30",
    ]


def test_occurrences_follow_the_team_calendar_across_dst_and_holidays() -> None:
    specs = parse_blocks(["tue 14:00-15:00", "thu 10:00-10:30"])
    # Christmas week 2026: Thu 24 Dec is closed, Tue 22 Dec is not.
    found = occurrences(specs, LONDON, datetime(2026, 12, 21, tzinfo=UTC), datetime(2026, 12, 28, tzinfo=UTC))
    assert [o.starts_at for o in found] == [datetime(2026, 12, 22, 14, 0, tzinfo=UTC)]
    # In summer time 14:00 London is 13:00 UTC.
    summer = occurrences(specs, LONDON, datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 6, 3, tzinfo=UTC))
    assert [(o.starts_at, o.ends_at) for o in summer] == [
        (datetime(2026, 6, 2, 13, 0, tzinfo=UTC), datetime(2026, 6, 2, 14, 0, tzinfo=UTC))
    ]


def test_the_calendar_file_is_a_weekly_recurrence_in_the_team_time_zone() -> None:
    specs = parse_blocks(["tue 14:00-15:00", "thu 10:00-10:30"])
    leader = Person(id=7, email="priya.shah@example.com", name="Priya Shah")
    now = datetime(2026, 11, 23, 14, 30, tzinfo=UTC)
    raw = calendar_file(specs, LONDON, leader, now)
    cal = icalendar.Calendar.from_ical(raw)
    assert str(cal["version"]) == "2.0" and cal["prodid"]
    zones = [c for c in cal.walk("VTIMEZONE")]
    assert [str(z["tzid"]) for z in zones] == ["Europe/London"]
    events = cal.walk("VEVENT")
    assert len(events) == 2
    first = events[0]
    start = first.decoded("dtstart")
    assert start.tzinfo is not None and str(first["dtstart"].params["TZID"]) == "Europe/London"
    assert (start.date(), start.time()) == (date(2026, 11, 24), time(14))
    assert first.decoded("dtend") - start == timedelta(hours=1)
    rule = first["rrule"]
    assert rule["FREQ"] == ["WEEKLY"] and rule["BYDAY"] == ["TU"]
    assert all(e["uid"] and e["dtstamp"] for e in events)
    assert len({str(e["uid"]) for e in events}) == 2
    # Re-serialised, it says the same: a parser reads back what it wrote.
    assert icalendar.Calendar.from_ical(cal.to_ical()).to_ical() == cal.to_ical()


ORG = """
qa_leads: [lee.park@example.com]
defaults:
  coaching_blocks: ["tue 14:00-15:00"]
teams:
  - name: Billing
    team_leader: {email: priya.shah@example.com, coaching_blocks: ["thu 10:00-10:30"]}
    qa_leads: [{email: kim.qa@example.com, name: Kim}]
    calibration_sample: 2
    agents: [{email: ana.ruiz@example.com}]
  - name: Retentions
    coaching_blocks: ["wed 09:00-09:45"]
    team_leader: {email: marcus.bell@example.com}
    agents: [{email: lena.ito@example.com}]
"""


def test_the_org_file_names_blocks_qa_leads_and_the_sample_size() -> None:
    spec = parse_org(ORG)
    billing, retentions = spec.teams
    assert billing.coaching_blocks == ["tue 14:00-15:00"]
    assert billing.leader.coaching_blocks == ["thu 10:00-10:30"]
    assert [q.email for q in billing.qa_leads] == ["lee.park@example.com", "kim.qa@example.com"]
    assert billing.calibration_sample == 2 and retentions.calibration_sample == 3
    assert retentions.coaching_blocks == ["wed 09:00-09:45"]
    assert [q.email for q in retentions.qa_leads] == ["lee.park@example.com"]


def test_a_bad_block_or_qa_lead_is_refused_on_its_line() -> None:
    bad = ORG.replace('"thu 10:00-10:30"', '"thursday morning"').replace(
        "[lee.park@example.com]", "[not-an-email]"
    )
    with pytest.raises(OrgFileError) as err:
        parse_org(bad)
    assert err.value.errors == [
        "org.yml:2: qa_leads[0]: 'not-an-email' is not an email address",
        "org.yml:7: teams[0].team_leader.coaching_blocks: 'thursday morning' is not a block: "
        'write a weekday and two times, e.g. "tue 14:00-15:00"',
    ]
