"""What a large organisation costs to show: a leader's queue loads only the cases it shows, the
organisation's figures never send a parameter per agent, a Home renders once at a time per person,
and serving never loads the chart library."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, select

from bot import measures_data
from bot.org import apply_org, parse_org
from bot.roles import leader_queue
from bot.standin.client import wait_for
from handlers.home import OneAtATime
from storage.models import Case, Team
from storage.queries import person_by_slack_id
from tests.conftest import Stack, sample_org
from tests.payloads import evaluation
from tests.test_core_loop import PRIYA, open_plan

AGENTS = 20


def many_awaiting(stack: Stack) -> None:
    """AGENTS more agents in Priya's team, each with a case awaiting a conversation."""
    extra = "\n".join(f"      - {{email: agent{i}@example.com}}" for i in range(AGENTS))
    anchor = "      - {email: tom.hale@example.com, name: Tom Hale, slack_id: U0TOMHALE}"
    spec = parse_org(sample_org().replace(anchor, anchor + "\n" + extra))
    with stack.db.unit_of_work() as s:
        apply_org(s, spec, {}, stack.clock.now())
    for i in range(AGENTS):
        payload = evaluation(id=f"queue-{i}")
        payload["agent"] = {"email": f"agent{i}@example.com"}
        stack.post_score(payload)


def test_a_leaders_queue_loads_only_the_awaiting_cases_it_shows(stack: Stack) -> None:
    many_awaiting(stack)
    now = stack.clock.now()
    with stack.db.read() as s:
        leader = person_by_slack_id(s, PRIYA)
        assert leader is not None
        queue = leader_queue(s, leader.id, now, shown=5)
        loaded = [o for o in s.identity_map.values() if isinstance(o, Case)]
        assert queue.awaiting_total == AGENTS and queue.awaiting_late == 0
        assert len(queue.awaiting) == 5 and len(loaded) == 5
        assert [c.due_at for c in queue.awaiting] == sorted(c.due_at for c in queue.awaiting)
        later = leader_queue(s, leader.id, max(c.due_at for c in loaded) + timedelta(seconds=1), shown=0)
        assert later.awaiting == [] and later.awaiting_late >= 5


def test_the_organisations_figures_send_no_parameter_per_agent(stack: Stack) -> None:
    many_awaiting(stack)
    stack.sweep()
    assert stack.people.submit(PRIYA, open_plan(stack)) == (200, None)  # one case agreed in the period
    now = stack.clock.now()
    sent: list[int] = []

    def count(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        sent.append(len(parameters or ()))

    event.listen(stack.db.read_engine, "before_cursor_execute", count)
    try:
        with stack.db.read() as s:
            teams = list(s.scalars(select(Team.id)))
            period = measures_data.parse_period("last-4-weeks", now)
            figures = measures_data.compute(s, measures_data.Scope(team_ids=tuple(teams)), period, now)
    finally:
        event.remove(stack.db.read_engine, "before_cursor_execute", count)
    assert figures.cases_opened >= AGENTS and figures.scores_landed >= AGENTS and figures.agreed == 1
    assert sent and max(sent) < AGENTS


def test_serving_does_not_load_the_chart_library() -> None:
    """matplotlib is a third of a server's memory; only drawing a chart imports it."""
    code = (
        "import sys, bot.app.factory, bot.app.cli, handlers.http, scheduler.runner, scheduler.delivery;"
        "print('matplotlib' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_quick_opens_of_a_home_render_it_once_more_not_once_each(stack: Stack) -> None:
    """While a Home is being published, further opens by the same person make one more publish
    after it, with what is true by then; they do not render side by side."""
    stack.post_score(evaluation())
    stack.standin.slow_answers("views.publish", 1.0)
    opened = {"type": "app_home_opened", "user": PRIYA, "channel": "D0", "tab": "home"}
    for _ in range(5):
        assert stack.people.event(opened)[0] == 200
    wait_for(lambda: len(stack.standin.calls_to("views.publish")) >= 2, what="the second publish")
    time.sleep(2.5)  # time for any further publish to arrive
    assert [c.args["user_id"] for c in stack.standin.calls_to("views.publish")] == [PRIYA, PRIYA]


def fail() -> None:
    raise RuntimeError("Slack said no")


def test_one_at_a_time_lets_the_next_request_through_after_a_failure() -> None:
    runs = OneAtATime()
    with pytest.raises(RuntimeError):
        runs.run("U1", fail)
    done: list[str] = []
    runs.run("U1", lambda: done.append("published"))
    assert done == ["published"]


def test_a_request_made_while_a_publish_fails_is_still_carried_out() -> None:
    runs = OneAtATime()
    started, release = threading.Event(), threading.Event()
    done: list[str] = []

    def slow_failure() -> None:
        started.set()
        release.wait(5)
        fail()

    first = threading.Thread(target=runs.run, args=("U1", slow_failure))
    first.start()
    assert started.wait(5)
    runs.run("U1", lambda: done.append("stale"))
    runs.run("U1", lambda: done.append("latest"))  # returns at once: the running one will do it
    assert done == []
    release.set()
    first.join(5)
    assert done == ["latest"]


def test_teams_figures_are_computed_one_at_a_time(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each computation holds many teams' cases: several asked for at once run one after another."""
    stack.post_score(evaluation())
    now = stack.clock.now()
    period = measures_data.parse_period("last-4-weeks", now)
    real_facts, running, most = measures_data.facts, [0], [0]

    def counting_facts(*args: Any, **kwargs: Any) -> Any:
        running[0] += 1
        most[0] = max(most[0], running[0])
        time.sleep(0.2)
        try:
            return real_facts(*args, **kwargs)
        finally:
            running[0] -= 1

    monkeypatch.setattr(measures_data, "facts", counting_facts)

    def compute_all() -> None:
        with stack.db.read() as s:
            measures_data.compute_by_team(s, list(s.scalars(select(Team))), period, now)

    threads = [threading.Thread(target=compute_all) for _ in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(10)
    assert most[0] == 1
