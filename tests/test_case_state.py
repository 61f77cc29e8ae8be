"""The case lifecycle table: what each transition allows, and the timers each state keeps."""

from __future__ import annotations

import json

import pytest

from bot import coaching, review
from bot.case_state import NEEDS, TRANSITIONS, UNREVIEWED, CaseState, Event, IllegalTransition, check
from storage import queries
from storage.db import Database
from storage.models import AWAITING_ONLY, Case
from tests.conftest import MONDAY_AFTERNOON, Stack
from tests.payloads import evaluation
from tests.scenario import ANA, PRIYA, import_org, person, score
from tests.test_core_loop import PRIYA as PRIYA_ID
from tests.test_core_loop import land, open_plan

NOW = MONDAY_AFTERNOON


@pytest.mark.parametrize("event", list(Event))
def test_every_state_outside_a_transitions_sources_is_refused(event: Event) -> None:
    rule = TRANSITIONS[event]
    for state in CaseState:
        case = Case(state=state.value)
        if state in rule.sources:
            check(case, event)
        else:
            with pytest.raises(IllegalTransition, match=f"it is now {state.words}"):
                check(case, event)


@pytest.mark.parametrize("event", [e for e in Event if e is not Event.OPEN])
def test_each_transition_leaves_exactly_the_timers_its_target_needs(event: Event) -> None:
    rule = TRANSITIONS[event]
    for source in rule.sources:
        assert source is not None
        kept = (set(NEEDS[source]) - set(rule.cancels)) | set(rule.sets)
        assert kept == set(NEEDS[rule.target]), (event, source)


def test_the_storage_layers_names_for_states_are_the_machines() -> None:
    assert queries.AWAITING == CaseState.AWAITING and set(queries.UNREVIEWED) == set(UNREVIEWED)
    assert f"'{CaseState.AWAITING.value}'" in AWAITING_ONLY  # the partial unique index


def test_a_refused_transition_changes_nothing(db: Database) -> None:
    import_org(db, NOW)
    case_id = score(db, NOW).case_id
    assert case_id is not None
    with pytest.raises(IllegalTransition, match="This agreement has moved on"), db.unit_of_work() as session:
        coaching.acknowledge(session, case_id, person(session, ANA), NOW)
    with pytest.raises(IllegalTransition, match="no review pending"), db.unit_of_work() as session:
        form = review.ReviewForm(happened="yes", worked="Yes.", next_step="close")
        review.record_review(session, case_id, person(session, PRIYA), form, NOW)
    with db.unit_of_work() as session:
        case = session.get(Case, case_id)
        assert case is not None and case.state == CaseState.AWAITING


def test_slack_shows_an_illegal_transition_as_a_clear_message(stack: Stack) -> None:
    land(stack)
    view = open_plan(stack)
    waive = stack.people.open_modal(
        PRIYA_ID, stack.standin.dm_of(PRIYA_ID), stack.message(PRIYA_ID, "leader_dm"), "waive_case"
    )
    assert stack.people.submit(PRIYA_ID, waive, {"reason": "Covered at the huddle."}) == (200, None)
    status, answer = stack.people.submit(PRIYA_ID, view)
    assert answer is not None and answer["response_action"] == "update"
    assert "moved on (it is now waived); nothing was changed" in json.dumps(answer["view"])
    # A waived case no longer awaits: the next score opens a new one.
    status, body = stack.post_score(evaluation(id="ev-next"))
    assert (status, body["status"]) == (202, "case_opened")
