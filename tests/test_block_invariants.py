"""Invariant: whatever happens between sweeps, every coaching block is recorded once and settles as
its facts say (squeezed out exactly when conversations waited at its start and none was logged in it)."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from bot import coaching, coaching_blocks
from bot.evaluation_input import parse_evaluation
from bot.org import SlackUser, apply_org, parse_org
from storage.db import Database
from storage.models import Case, CoachingBlockRun, OutboxMessage, Person
from tests.conftest import sample_org
from tests.payloads import evaluation

BLOCKS = '["mon 10:00-11:00", "tue 14:00-14:30", "wed 09:30-10:00"]'
ORG = sample_org().replace(
    "    closed: [2026-12-24]\n", f"    closed: [2026-12-24]\n    coaching_blocks: {BLOCKS}\n"
)
AGENTS = ["ana.ruiz@example.com", "tom.hale@example.com"]
START = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)

step = st.one_of(
    st.tuples(st.just("score"), st.sampled_from(AGENTS)),
    st.tuples(st.just("agree"), st.sampled_from(AGENTS)),
    st.tuples(st.just("wait"), st.integers(min_value=5, max_value=24 * 60)),
    st.tuples(st.just("sweep"), st.just(0)),
)


def check(db: Database, now: datetime, swept: bool) -> None:
    with db.unit_of_work() as s:
        runs = list(s.scalars(select(CoachingBlockRun)))
        if swept:  # a sweep leaves no ended block unsettled, however long since the last one
            assert all(r.status != "open" for r in runs if r.ends_at <= now)
        starts = [(r.leader_id, r.starts_at) for r in runs]
        assert len(starts) == len(set(starts))
        for run in runs:
            cases = list(s.scalars(select(Case).where(Case.leader_id == run.leader_id)))
            waiting = sum(
                1
                for c in cases
                if c.opened_at < run.starts_at
                and (c.agreed_at is None or c.agreed_at >= run.starts_at)
                and (c.waived_at is None or c.waived_at >= run.starts_at)
            )
            assert run.waiting == waiting
            if run.status == "open":
                continue
            held = sum(1 for c in cases if c.agreed_at and run.starts_at <= c.agreed_at < run.ends_at)
            assert run.held == held
            expected = "held" if held else ("squeezed" if waiting else "clear")
            assert run.status == expected
            starts_dm = s.scalar(
                select(func.count(OutboxMessage.id)).where(
                    OutboxMessage.dedupe_key == coaching_blocks.block_key(run.leader_id, run.starts_at)
                )
            )
            assert starts_dm <= 1 and (starts_dm == 0 or run.waiting > 0)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(step, min_size=1, max_size=25))
def test_blocks_settle_as_their_facts_say(steps: list[tuple[str, object]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{Path(tmp) / 'blocks.db'}")
        db.create_schema()
        now = START
        with db.unit_of_work() as s:
            apply_org(s, parse_org(ORG), {}, now)
        n = 0
        for kind, arg in steps:
            with db.unit_of_work() as s:
                if kind == "score":
                    n += 1
                    payload = evaluation(id=f"ev-{n}", agent={"email": arg}, landed_at=now.isoformat())
                    coaching.intake(s, parse_evaluation(payload), now, "test")
                elif kind == "agree":
                    agent = s.scalar(select(Person).where(Person.email == arg))
                    case = s.scalar(
                        select(Case).where(Case.agent_id == agent.id, Case.state == "awaiting_conversation")  # type: ignore[union-attr]
                    )
                    if case is not None:
                        draft = coaching.draft_plan(s, case, now)
                        form = coaching.PlanForm(
                            kind=draft.kind,
                            behaviour_key=draft.behaviour_key,
                            example=draft.example,
                            action=draft.action,
                            by_when=draft.by_when.isoformat(),
                            review_method=draft.review_method,
                            agent_proposed=False,
                            notes=None,
                        )
                        coaching.agree_plan(s, case.id, case.leader, form, now)
                elif kind == "wait":
                    assert isinstance(arg, int)
                    now += timedelta(minutes=arg)
                else:
                    coaching_blocks.sweep(s, now)
            check(db, now, swept=kind == "sweep")
        db.dispose()


def test_concurrent_sweeps_open_each_block_and_draw_each_sample_once(db: Database) -> None:
    """Two sweeps at the same moment (two processes): one block run, one start DM, one sample per team."""
    import threading

    from bot import calibration
    from storage.models import CalibrationSample

    now = START
    in_slack = {
        "dana.okafor@example.com": SlackUser("U0DANA", "Dana Okafor", "Europe/London"),
        "lee.park@example.com": SlackUser("U0LEE", "Lee Park", "Europe/London"),
    }
    with db.unit_of_work() as s:
        apply_org(s, parse_org(ORG), dict(in_slack), now)
        coaching.intake(s, parse_evaluation(evaluation(landed_at=now.isoformat())), now, "test")
    with db.unit_of_work() as s:
        case = s.scalar(select(Case))
        assert case is not None
        draft = coaching.draft_plan(s, case, now)
        form = coaching.PlanForm(
            kind=draft.kind,
            behaviour_key=draft.behaviour_key,
            example=draft.example,
            action=draft.action,
            by_when=draft.by_when.isoformat(),
            review_method=draft.review_method,
            agent_proposed=False,
            notes=None,
        )
        coaching.agree_plan(s, case.id, case.leader, form, now)
        coaching.intake(s, parse_evaluation(evaluation(id="ev-2", landed_at=now.isoformat())), now, "test")
    at_block = datetime(2026, 11, 30, 10, 5, tzinfo=UTC)  # Monday's block, and the week's calibration
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def sweep() -> None:
        try:
            barrier.wait()
            with db.unit_of_work() as s:
                coaching_blocks.sweep(s, at_block)
                calibration.sample(s, at_block)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with db.unit_of_work() as s:
        runs = list(s.scalars(select(CoachingBlockRun)))
        assert [(r.waiting, r.status) for r in runs] == [(1, "open")]
        starts = s.scalar(select(func.count(OutboxMessage.id)).where(OutboxMessage.kind == "block_start"))
        assert starts == 1
        assert s.scalar(select(func.count(CalibrationSample.id))) == 1
        requests = s.scalar(
            select(func.count(OutboxMessage.id)).where(OutboxMessage.kind == "calibration_request")
        )
        assert requests == 2  # Dana (escalation contact) and Lee (QA lead), once each
