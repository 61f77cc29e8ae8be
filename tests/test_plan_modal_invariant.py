"""Whatever the leader does in the plan modal (switch behaviours, type), what a submission records is
what the screen shows: the chosen behaviour, and its example and action (typed, or its draft)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot import coaching
from bot.slack.views import behaviour_value
from bot.standin import inputs as screen
from handlers.plan import submitted_plan
from storage.models import Case
from tests.conftest import Stack
from tests.payloads import evaluation
from tests.test_core_loop import PRIYA, land, modal_update, open_plan

KEYS = ["acknowledge", "next-steps", coaching.DEVELOPMENT_GOAL]
STEP = st.one_of(
    st.tuples(st.just("choose"), st.sampled_from(KEYS)),
    st.tuples(
        st.just("type"),
        st.sampled_from(["example", "action"]),
        st.text(alphabet="abc xyz.", min_size=1, max_size=20),
    ),
)


def drafts(stack: Stack) -> tuple[int, dict[str, coaching.PlanDraft]]:
    with stack.db.unit_of_work() as session:
        case = session.query(Case).one()
        now = stack.clock.now()
        return case.id, {k: coaching.draft_plan(session, case, now, behaviour_key=k) for k in KEYS}


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(STEP, max_size=5))
def test_a_submission_records_what_the_screen_shows(stack: Stack, steps: list[tuple[str, ...]]) -> None:
    with stack.db.unit_of_work() as session:
        landed = session.query(Case).count() > 0
    if not landed:
        payload = evaluation()
        payload["items"].append(
            {
                "key": "next-steps",
                "name": "Confirms next steps",
                "score": 3,
                "max_score": 5,
                "comment": "Soon.",
            }
        )
        land(stack, items=payload["items"])
    case_id, by_key = drafts(stack)
    view = open_plan(stack)
    chosen, typed = "acknowledge", {}
    for step in steps:
        if step[0] == "choose":
            if step[1] == chosen:
                continue  # picking the option already selected sends nothing
            stack.people.choose(PRIYA, view, "behaviour", behaviour_value(step[1]))
            view = modal_update(stack, view)
            chosen, typed = step[1], {}
        else:
            _, name, text = step
            found = screen.find(stack.standin.shown_inputs(view["id"]), name)
            assert found is not None
            found.enter(text)
            typed[name] = text
        shown = stack.standin.shown_inputs(view["id"])
        values = screen.state_values(shown)
        with stack.db.unit_of_work() as session:
            form, _ = submitted_plan(session, case_id, values, stack.clock.now())
        draft = by_key[chosen]
        assert form.behaviour_key == chosen
        assert form.example == typed.get("example", draft.example)
        assert form.action == typed.get("action", draft.action)
        on_screen = screen.find(shown, "example")
        assert on_screen is not None and on_screen.state["value"] == form.example
