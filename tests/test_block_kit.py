"""Block Kit built on slack_sdk.models: a limit breach raises; only people's own words are clipped,
visibly; links cannot be disguised."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from slack_sdk.errors import SlackObjectFormationError

from bot.slack import blocks as bk
from bot.wording import escape_mrkdwn
from tests.conftest import Stack
from tests.test_core_loop import ANA, PRIYA, land, open_plan


@pytest.mark.parametrize(
    "build",
    [
        lambda: bk.button("x" * 76, "a", "1"),
        lambda: bk.option("A criterion", "v" * 151),
        lambda: bk.section("x" * 3001),
        lambda: bk.modal("Title", [bk.divider()] * 101, callback_id="c"),
        lambda: bk.home([bk.divider()] * 101),
        lambda: bk.actions(*[bk.button("b", f"a{i}", "1") for i in range(26)]),
    ],
)
def test_a_limit_breach_raises_instead_of_being_clipped(build: object) -> None:
    with pytest.raises(SlackObjectFormationError):
        build()  # type: ignore[operator]


def test_names_are_clipped_visibly() -> None:
    name = "Anastasia Maria Guadalupe de los Ángeles Ruiz-Villanueva y Castellanos " * 3
    assert bk.header(f"Coaching: {name}")["text"]["text"].endswith("…")
    assert len(bk.modal(f"Coach {name}", [bk.divider()], callback_id="c")["title"]["text"]) == 24
    option = bk.option(name, "c-1", name)
    assert len(option["text"]["text"]) == 75 and option["text"]["text"].endswith("…")


def test_capped_says_how_many_more() -> None:
    blocks = [bk.divider()] * 61
    capped = bk.capped(blocks)
    assert len(capped) == 50 and capped[-1]["elements"][0]["text"] == "…and 12 more."
    assert bk.capped(blocks[:50]) == blocks[:50]


@given(st.text(max_size=400), st.integers(min_value=2, max_value=300))
def test_escaped_text_fits_and_never_cuts_an_entity(text: str, limit: int) -> None:
    out = bk.escaped(text, limit)
    assert len(out) <= limit
    if out.endswith("…") and out != escape_mrkdwn(text):
        kept = out[:-1]
        assert escape_mrkdwn(text).startswith(kept)
        assert not re.search(r"&[a-z]*$", kept)  # no half of &amp; &lt; &gt;
    else:
        assert out == escape_mrkdwn(text)


@given(st.text(max_size=200), st.text(min_size=1, max_size=40))
def test_a_link_is_one_link_labelled_with_the_contact_or_no_link(url: str, label: str) -> None:
    out = bk.link(url, label)
    if out.startswith("<"):
        target, _, shown = out[1:-1].partition("|")
        assert url.startswith(("http://", "https://"))
        assert not set(target) & set("<>| \n")
        assert shown == escape_mrkdwn(label)
    else:
        assert out == escape_mrkdwn(label)


def test_a_long_example_full_of_markup_reaches_the_agent_clipped(stack: Stack) -> None:
    land(stack)
    view = open_plan(stack)
    example = "Said <this> & that. " * 150  # 3000 characters; escaped, far more
    assert stack.people.submit(PRIYA, view, {"example": example[:3000]}) == (200, None)
    stack.sweep()
    assert not stack.standin.calls_to("chat.postMessage", ok=False)
    agreement = stack.message(ANA, "agent_agreement")
    focus = agreement["blocks"][2]["text"]["text"]
    assert focus.endswith("…") and "Said &lt;this&gt; &amp; that." in focus and len(focus) <= 3000
