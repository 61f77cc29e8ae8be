"""Defects a lenient stand-in hid: each test here failed before its fix, against a stand-in that
answers as Slack does (input state kept across views.update, ids where Slack wants ids, the
bot's channel membership, option values up to 150 characters, 50 blocks per message)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from bot.org import apply_org, parse_org
from bot.standin.client import wait_for
from bot.standin.server import Fault
from storage.models import Case, OutboxMessage, Team
from tests.conftest import Stack, sample_org
from tests.payloads import evaluation
from tests.test_core_loop import ANA, DANA, PRIYA, land, modal_update, open_plan, texts
from tests.test_followup import at, run_until
from tests.test_home_and_command import coach

NEXT_STEPS = {
    "key": "next-steps",
    "name": "Confirms next steps",
    "score": 3,
    "max_score": 5,
    "comment": "Said 'soon' without a date.",
    "good_looks_like": "Give the date.",
}


def input_block(view: dict[str, Any], name: str) -> dict[str, Any]:
    """The input block whose id is `name` or starts with `name.`."""
    return next(
        b for b in view["blocks"] if b.get("block_id") == name or b.get("block_id", "").startswith(name + ".")
    )


def option_value(view: dict[str, Any], name: str) -> str:
    """The behaviour select's option value for the criterion called `name`."""
    options = input_block(view, "behaviour")["element"]["options"]
    return str(next(o["value"] for o in options if o["text"]["text"] == name))


def agreed(stack: Stack) -> Case:
    with stack.db.unit_of_work() as session:
        case = session.query(Case).one()
        session.expunge(case)
        return case


# --- 1. switching the behaviour replaces the example and the action ------------------------------


def test_switching_the_behaviour_submits_the_new_example_and_action(stack: Stack) -> None:
    payload = evaluation()
    payload["items"].append(NEXT_STEPS)
    land(stack, items=payload["items"])
    view = open_plan(stack)
    stack.people.choose(PRIYA, view, "behaviour", option_value(view, "Confirms next steps"))
    updated = modal_update(stack, view)
    # What the leader sees: Slack keeps inputs whose ids did not change, so the example and action
    # must have come back under new ids to show the new behaviour's text.
    shown = stack.standin.shown_inputs(view["id"])
    example = next(i for b, i in shown.items() if b.startswith("example"))
    assert example.state["value"] is not None and "Said 'soon' without a date." in example.state["value"]
    assert stack.people.submit(PRIYA, updated) == (200, None)
    case = agreed(stack)
    assert case.behaviour_key == "next-steps"
    assert "Said 'soon' without a date." in (case.example or "") and case.action == "Give the date."


def test_after_a_switch_the_leaders_own_words_and_errors_land_on_the_current_inputs(stack: Stack) -> None:
    payload = evaluation()
    payload["items"].append(NEXT_STEPS)
    land(stack, items=payload["items"])
    view = open_plan(stack)
    stack.people.choose(PRIYA, view, "behaviour", option_value(view, "Confirms next steps"))
    updated = modal_update(stack, view)
    current = input_block(updated, "action")["block_id"]
    status, answer = stack.people.submit(PRIYA, updated, {"action": "  "})
    assert answer is not None and answer["response_action"] == "errors"
    assert set(answer["errors"]) == {current}
    assert stack.people.submit(PRIYA, updated, {"action": "Say the date out loud."}) == (200, None)
    assert agreed(stack).action == "Say the date out loud."


# --- 2. escalation to a channel ------------------------------------------------------------------


def test_a_channel_escalation_survives_a_lost_response_without_a_second_post(stack: Stack) -> None:
    stack.clock.set(at("2026-11-25T23:30:00+00:00"))
    lena = evaluation(id="lena-1", landed_at="2026-11-25T23:30:00Z")
    lena["agent"] = {"email": "lena.ito@example.com"}
    assert stack.post_score(lena)[0] == 202
    run_until(stack, at("2026-12-04T22:00:00+00:00"), step=timedelta(hours=6))
    assert not stack.standin.messages("C0LEADERS")
    # The post to the channel goes through but its answer is lost: the next sweep looks in history.
    stack.standin.add_fault(Fault("chat.postMessage", "server_error", times=1, after_effect=True))
    stack.clock.set(at("2026-12-04T22:30:00+00:00"))
    stack.sweep()
    stack.standin.clear_faults()
    stack.clock.advance(timedelta(minutes=10))
    stack.sweep()
    assert len(stack.standin.messages("C0LEADERS")) == 1
    with stack.db.unit_of_work() as session:
        row = session.query(OutboxMessage).filter(OutboxMessage.kind == "escalation").one()
        assert (row.status, row.slack_channel) == ("sent", "C0LEADERS")
    assert not stack.standin.calls_to("conversations.history", ok=False)


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "QA_", "COACHLOOP_", "DATABASE"))
    }
    return subprocess.run(
        [sys.executable, "-m", "bot.app.cli", *args],
        env={**clean, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_org_import_stores_channel_ids_and_names_channels_the_bot_cannot_post_to(
    stack: Stack, tmp_path: Path
) -> None:
    stack.standin.add_channel("C0QAPRIV", "qa-private", private=True)  # the bot was never invited
    stack.standin.add_channel("C0OPS", "cx-ops")  # public, the bot not in it
    org = tmp_path / "org.yml"
    org.write_text(
        sample_org().replace(
            'escalate_to: ["#cx-leadership"]', 'escalate_to: ["#cx-leadership", "#cx-ops", "#qa-private"]'
        )
    )
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}",
        "SLACK_BOT_TOKEN": stack.standin.token,
        "SLACK_API_URL": stack.standin.url,
    }
    assert _cli(["db", "upgrade"], env, tmp_path).returncode == 0
    result = _cli(["org", "import", str(org)], env, tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "#cx-ops: the bot is not in this channel: invite it (/invite @coachloop in #cx-ops)" in out
    assert "#qa-private: no channel of that name the bot can see" in out
    from storage.db import Database

    db = Database(env["DATABASE_URL"])
    with db.unit_of_work() as session:
        team = session.query(Team).filter_by(name="Retentions").one()
        assert team.escalation_channels == ["C0LEADERS", "C0OPS"]
    db.dispose()


# --- 3. long criterion keys ----------------------------------------------------------------------


def test_a_criterion_key_longer_than_150_characters_can_be_coached(stack: Stack) -> None:
    long_key = "billing/" + "k" * 180
    payload = evaluation()
    payload["items"][0]["key"] = long_key
    land(stack, items=payload["items"])
    view = open_plan(stack)
    assert all(len(o["value"]) <= 150 for o in input_block(view, "behaviour")["element"]["options"])
    assert stack.people.submit(PRIYA, view) == (200, None)
    assert agreed(stack).behaviour_key == long_key


# --- 4. /coach inside 50 blocks ------------------------------------------------------------------


def test_coach_for_someone_overseeing_sixty_teams_fits_in_one_message(stack: Stack) -> None:
    teams = "\n".join(
        f"  - name: Team {i:02d}\n    team_leader: {{email: lead{i}@example.com}}\n"
        f"    escalate_to: [{{email: dana.okafor@example.com}}]\n    agents: [{{email: a{i}@example.com}}]"
        for i in range(60)
    )
    spec = parse_org(sample_org() + teams + "\n")
    with stack.db.unit_of_work() as session:
        apply_org(session, spec, {}, stack.clock.now())
    answer = coach(stack, DANA)
    assert len(answer["blocks"]) <= 50
    assert "…and 12 more." in json.dumps(answer["blocks"], ensure_ascii=False)
    assert not stack.standin.calls_to("response_url", ok=False)


# --- 5. a typed /coach name ----------------------------------------------------------------------


def test_a_typed_name_or_email_finds_the_agent(stack: Stack) -> None:
    land(stack)
    for typed in ("@Ana Ruiz", "Ana Ruiz", "ana.ruiz@example.com", "@ana ruiz"):
        answer = coach(stack, PRIYA, typed)
        assert "Coaching: Ana Ruiz" in json.dumps(answer.get("blocks", [])), (typed, answer)


def test_an_ambiguous_typed_name_lists_the_candidates(stack: Stack) -> None:
    anchor = "      - {email: tom.hale@example.com, name: Tom Hale, slack_id: U0TOMHALE}"
    text = sample_org().replace(anchor, anchor + "\n      - {email: tom.hart@example.com, name: Tom Hart}")
    with stack.db.unit_of_work() as session:
        apply_org(session, parse_org(text), {}, stack.clock.now())
    answer = coach(stack, PRIYA, "@Tom")
    said = answer["text"]
    assert "Tom Hale" in said and "Tom Hart" in said and "more than one" in said
    nobody = coach(stack, PRIYA, "@Lena Ito")  # exists, but Priya may not see her
    assert "Lena" not in json.dumps(nobody.get("blocks", [])) and "No agent" in nobody["text"]


# --- 6. contact links ----------------------------------------------------------------------------


def test_a_contact_url_cannot_disguise_a_link_or_break_the_markup(stack: Stack) -> None:
    payload = evaluation()
    payload["contact"]["url"] = "https://evil.example/x|C-88912> <!channel"
    land(stack, contact=payload["contact"])
    body = texts(stack.message(PRIYA, "leader_dm"))
    assert "<!channel" not in body
    assert "<https://evil.example/x%7CC-88912%3E%20%3C%21channel|C-88912>" in body

    other = evaluation(id="ev-js")
    other["agent"] = {"email": "tom.hale@example.com"}
    other["contact"]["url"] = "javascript:alert(1)"
    assert stack.post_score(other)[0] == 202
    stack.sweep()
    tom_dm = [m for m in stack.dm(PRIYA) if "Tom Hale" in texts(m)]
    assert tom_dm and "javascript" not in texts(tom_dm[0]) and "C-88912" in texts(tom_dm[0])


def test_the_whole_loop_still_closes_with_the_agent(stack: Stack) -> None:
    """The defects fixed, the plain path is unchanged: plan as suggested, agent acknowledges."""
    land(stack)
    assert stack.people.submit(PRIYA, open_plan(stack)) == (200, None)
    stack.sweep()
    stack.people.click(ANA, stack.standin.dm_of(ANA), stack.message(ANA, "agent_agreement"), "ack_agreement")
    wait_for(lambda: agreed(stack).state == "acknowledged", what="acknowledgement")


def test_escalations_reach_the_channel_by_id(stack: Stack) -> None:
    stack.clock.set(at("2026-11-25T23:30:00+00:00"))
    lena = evaluation(id="lena-1", landed_at="2026-11-25T23:30:00Z")
    lena["agent"] = {"email": "lena.ito@example.com"}
    assert stack.post_score(lena)[0] == 202
    # Due Fri 4 Dec 17:30 New York; the escalation goes out in working hours, on Monday morning.
    run_until(stack, at("2026-12-07T16:00:00+00:00"), step=timedelta(hours=2))
    posted = [c.args["channel"] for c in stack.standin.calls_to("chat.postMessage")]
    assert "C0LEADERS" in posted and "#cx-leadership" not in posted
