"""One case per agent awaits a conversation; corrections and late-known agents keep the case right."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from bot import coaching
from bot.evaluation_input import parse_evaluation
from storage.db import Database
from storage.models import AuditEntry, Case
from tests.conftest import MONDAY_AFTERNOON, Stack
from tests.payloads import evaluation
from tests.scenario import (
    ANA,
    PRIYA,
    TOM,
    cases_of,
    do_review,
    get_case,
    get_evaluation,
    import_org,
    outbox,
    person,
    plan,
    score,
    timers_of,
)

NOW = MONDAY_AFTERNOON


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def awaiting(db: Database, email: str) -> list[Case]:
    return [c for c in cases_of(db, email) if c.state == "awaiting_conversation"]


# --- 1. one awaiting case per agent -----------------------------------------------------------------


def test_a_follow_on_review_joins_the_case_a_score_already_opened(db: Database) -> None:
    import_org(db, NOW)
    first = score(db, NOW, id="ev-1").case_id
    assert first is not None
    plan(db, first, PRIYA, NOW)
    later = NOW + timedelta(days=1)
    second = score(db, later, id="ev-2", landed_at="2026-11-24T10:00:00Z", score=90.0).case_id
    assert second is not None and second != first
    do_review(db, first, PRIYA, later + timedelta(days=6), next_step="recoach")
    still = awaiting(db, ANA)
    assert [c.id for c in still] == [second]
    # The review's choice re-targets the waiting conversation, linked to the case it follows.
    assert still[0].suggested_key == "acknowledge" and still[0].previous_case_id == first


def test_the_database_refuses_a_second_awaiting_case(db: Database) -> None:
    import_org(db, NOW)
    case_id = score(db, NOW).case_id
    with pytest.raises(IntegrityError), db.unit_of_work() as session:
        existing = session.get(Case, case_id)
        assert existing is not None
        session.add(
            Case(
                agent_id=existing.agent_id,
                team_id=existing.team_id,
                leader_id=existing.leader_id,
                kind="performance",
                state="awaiting_conversation",
                opened_at=NOW,
                due_at=existing.due_at,
            )
        )
        session.flush()


def test_two_scores_at_the_same_moment_open_one_case(db: Database) -> None:
    import_org(db, NOW)
    barrier = threading.Barrier(2)
    results: list[object] = []

    def land(ev_id: str) -> None:
        data = parse_evaluation(evaluation(id=ev_id))
        barrier.wait()
        try:
            with db.unit_of_work() as session:
                results.append(coaching.intake(session, data, NOW, "test").case_id)
        except Exception as exc:  # noqa: BLE001 - recorded and asserted below
            results.append(exc)

    threads = [threading.Thread(target=land, args=(f"race-{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(isinstance(r, int) for r in results), results
    assert len(set(results)) == 1 and len(awaiting(db, ANA)) == 1


# --- 2. corrections ------------------------------------------------------------------------------


def test_a_corrected_agent_moves_the_evaluation_to_that_agents_case(db: Database) -> None:
    import_org(db, NOW)
    ana_case = score(db, NOW, id="ev-9", updated_at="2026-11-23T14:02:00Z").case_id
    result = score(db, NOW, id="ev-9", agent_email=TOM, updated_at="2026-11-23T15:00:00Z")
    ev = get_evaluation(db, "zendesk-qa", "ev-9")
    tom_cases = awaiting(db, TOM)
    assert len(tom_cases) == 1 and ev.case_id == tom_cases[0].id == result.case_id
    assert get_case(db, tom_cases[0].id).agent.email == TOM
    # Ana's case had nothing else: it no longer waits for a conversation about Tom's contact.
    assert awaiting(db, ANA) == [] and get_case(db, ana_case or 0).state == "waived"
    with db.unit_of_work() as session:
        moved = session.query(AuditEntry).filter_by(action="evaluation_moved").one()
        assert moved.detail["from_case"] == ana_case and moved.detail["to_case"] == tom_cases[0].id


def test_moving_evidence_of_an_agreed_case_tells_its_leader(db: Database) -> None:
    import_org(db, NOW)
    ana_case = score(db, NOW, id="ev-9", updated_at="2026-11-23T14:02:00Z").case_id
    assert ana_case is not None
    plan(db, ana_case, PRIYA, NOW)
    score(db, NOW, id="ev-9", agent_email=TOM, updated_at="2026-11-23T15:00:00Z")
    told = outbox(db, "leader_evidence_moved")
    with db.unit_of_work() as session:
        priya = person(session, PRIYA)
    assert [(m.case_id, m.person_id) for m in told] == [(ana_case, priya.id)]
    assert get_case(db, ana_case).state == "agreed"


def test_a_corrected_landing_time_moves_the_deadline_and_timers(db: Database) -> None:
    import_org(db, NOW)
    case_id = score(db, NOW, id="ev-5", updated_at="2026-11-23T14:02:00Z").case_id
    assert case_id is not None
    assert get_case(db, case_id).due_at == at("2026-11-30T17:30:00+00:00")
    score(db, NOW, id="ev-5", landed_at="2026-11-20T10:00:00Z", updated_at="2026-11-23T16:00:00Z")
    case = get_case(db, case_id)
    assert case.due_at == at("2026-11-27T17:30:00+00:00")
    timers = timers_of(db, case_id)
    assert timers[f"case:{case_id}:escalate:1"] == ("pending", case.due_at)
    assert timers[f"case:{case_id}:remind:last_day"] == ("pending", at("2026-11-27T09:00:00+00:00"))


def test_an_older_version_changes_nothing(stack: Stack) -> None:
    newer = evaluation(id="ev-7", score=40.0, updated_at="2026-11-23T14:10:00Z")
    status, body = stack.post_score(newer)
    assert status == 202
    older = evaluation(id="ev-7", score=90.0, updated_at="2026-11-23T14:05:00+00:00")
    status, again = stack.post_score(older)
    assert (status, again["status"], again["case_id"]) == (200, "stale", body["case_id"])
    assert get_evaluation(stack.db, "zendesk-qa", "ev-7").score == 40.0
    status, bad = stack.post_score(evaluation(id="ev-8", updated_at="2026-11-23T14:05:00"))
    assert status == 422 and bad["errors"][0]["path"] == "updated_at"


# --- 4. windows that start when the case could ----------------------------------------------------------


def test_a_score_kept_for_an_unknown_agent_starts_its_window_at_the_import(db: Database) -> None:
    import_org(db, NOW)
    kept = score(db, NOW, id="ev-new", agent_email="new.agent@example.com")
    assert kept.status == "unassigned_agent"
    later = at("2026-12-04T10:00:00+00:00")  # Friday, 9 working days after the score landed
    org = (
        "defaults: {timezone: Europe/London}\nteams:\n  - name: Billing\n"
        "    team_leader: {email: priya.shah@example.com, name: Priya Shah}\n"
        "    escalate_to: [{email: dana.okafor@example.com}]\n"
        "    agents: [{email: ana.ruiz@example.com}, {email: tom.hale@example.com},"
        " {email: new.agent@example.com}]\n"
    )
    import_org(db, later, org)
    (case,) = awaiting(db, "new.agent@example.com")
    assert case.due_at == at("2026-12-11T17:30:00+00:00")
    assert all(due > later for _, due in timers_of(db, case.id).values())


def test_a_late_arriving_score_for_a_known_agent_keeps_its_landing_time(db: Database) -> None:
    import_org(db, NOW)
    case_id = score(db, at("2026-12-04T10:00:00+00:00"), id="ev-late").case_id
    assert get_case(db, case_id or 0).due_at == at("2026-11-30T17:30:00+00:00")


def test_a_landing_time_in_the_future_is_refused(stack: Stack) -> None:
    ahead = (stack.clock.now() + timedelta(minutes=6)).strftime("%Y-%m-%dT%H:%M:%SZ")
    status, body = stack.post_score(evaluation(id="ev-future", landed_at=ahead))
    assert status == 422 and [e["path"] for e in body["errors"]] == ["landed_at"]
    assert "in the future" in body["errors"][0]["message"]
    near = (stack.clock.now() + timedelta(minutes=4)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert stack.post_score(evaluation(id="ev-near", landed_at=near))[0] == 202
