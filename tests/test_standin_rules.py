"""The stand-in refuses what Slack refuses: each rule (written from Slack's method and Block Kit
reference) shown with the real WebClient getting Slack's error."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.standin import inputs as screen
from bot.standin.scopes import manifest_scopes
from bot.standin.server import SlackStandIn


@pytest.fixture
def slack() -> Iterator[tuple[SlackStandIn, WebClient]]:
    with SlackStandIn("xoxb-rules-" + secrets.token_hex(4)) as s:
        s.add_user("U0ANA", "ana@example.com", "Ana Ruiz")
        yield s, WebClient(token=s.token, base_url=s.url)


def refused(call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(SlackApiError) as caught:
        call(*args, **kwargs)
    return str(caught.value.response["error"])


def section(i: int) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": f"line {i}"}}


def text_input(block_id: str, initial: str, action_id: str = "a") -> dict[str, Any]:
    return {
        "type": "input",
        "block_id": block_id,
        "label": {"type": "plain_text", "text": block_id},
        "element": {"type": "plain_text_input", "action_id": action_id, "initial_value": initial},
    }


def modal(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"type": "modal", "title": {"type": "plain_text", "text": "T"}, "blocks": list(blocks)}


# --- conversations and membership ----------------------------------------------------------------


def test_methods_that_take_a_conversation_id_refuse_a_name(slack: tuple[SlackStandIn, WebClient]) -> None:
    standin, client = slack
    standin.add_channel("C0LEAD", "cx-leadership", bot_member=True)
    posted = client.chat_postMessage(channel="#cx-leadership", text="hello")  # postMessage takes a name
    assert posted["channel"] == "C0LEAD"
    assert refused(client.conversations_history, channel="#cx-leadership") == "channel_not_found"
    assert (
        refused(client.chat_update, channel="#cx-leadership", ts=posted["ts"], text="x")
        == "channel_not_found"
    )
    assert client.conversations_history(channel="C0LEAD")["messages"][0]["text"] == "hello"


def test_history_comes_newest_first_a_page_at_a_time_between_its_bounds(
    slack: tuple[SlackStandIn, WebClient],
) -> None:
    standin, client = slack
    standin.add_channel("C0LEAD", "cx-leadership", bot_member=True)
    ts = [standin.user_says("C0LEAD", "U0ANA", f"m{n}") for n in range(5)]
    first = client.conversations_history(channel="C0LEAD", limit=2)
    assert [m["text"] for m in first["messages"]] == ["m4", "m3"] and first["has_more"]
    cursor = first["response_metadata"]["next_cursor"]
    second = client.conversations_history(channel="C0LEAD", limit=2, cursor=cursor)
    assert [m["text"] for m in second["messages"]] == ["m2", "m1"] and second["has_more"]
    last = client.conversations_history(
        channel="C0LEAD", limit=2, cursor=second["response_metadata"]["next_cursor"]
    )
    assert [m["text"] for m in last["messages"]] == ["m0"] and not last["has_more"]
    assert last["response_metadata"]["next_cursor"] == ""
    # `oldest` and `latest` leave out the messages at those times, unless `inclusive`.
    between = client.conversations_history(channel="C0LEAD", oldest=ts[1], latest=ts[3])
    assert [m["text"] for m in between["messages"]] == ["m2"]
    both = client.conversations_history(channel="C0LEAD", oldest=ts[1], latest=ts[3], inclusive=True)
    assert [m["text"] for m in both["messages"]] == ["m3", "m2", "m1"]
    assert refused(client.conversations_history, channel="C0LEAD", cursor="nonsense") == "invalid_cursor"


def test_the_bot_posts_only_where_it_was_invited(slack: tuple[SlackStandIn, WebClient]) -> None:
    standin, client = slack
    standin.add_channel("C0PUB", "cx-public")
    standin.add_channel("G0PRIV", "cx-private", private=True)
    assert refused(client.chat_postMessage, channel="C0PUB", text="x") == "not_in_channel"
    assert refused(client.conversations_history, channel="C0PUB") == "not_in_channel"
    # A private channel the bot is not in does not exist, for the bot.
    assert refused(client.chat_postMessage, channel="G0PRIV", text="x") == "channel_not_found"
    listed = {c["id"] for c in client.conversations_list(types="public_channel,private_channel")["channels"]}
    assert listed == {"C0PUB"}
    standin.invite("C0PUB")
    assert client.chat_postMessage(channel="C0PUB", text="now").get("ok")
    assert standin.messages("C0PUB")[0]["text"] == "now"


def test_chat_write_public_posts_to_public_channels_only(slack: tuple[SlackStandIn, WebClient]) -> None:
    standin, client = slack
    standin.scopes = standin.scopes | {"chat:write.public"}
    standin.add_channel("C0PUB", "cx-public")
    standin.add_channel("G0PRIV", "cx-private", private=True)
    assert client.chat_postMessage(channel="C0PUB", text="x").get("ok")
    assert refused(client.chat_postMessage, channel="G0PRIV", text="x") == "channel_not_found"


# --- scopes --------------------------------------------------------------------------------------


def test_a_method_whose_scope_the_manifest_does_not_grant_is_refused(
    slack: tuple[SlackStandIn, WebClient],
) -> None:
    standin, client = slack
    assert standin.scopes == manifest_scopes() and "im:read" not in standin.scopes
    with pytest.raises(SlackApiError) as caught:
        client.conversations_list(types="im")
    assert caught.value.response["error"] == "missing_scope"
    assert caught.value.response["needed"] == "im:read"
    standin.scopes = standin.scopes - {"chat:write"}
    assert refused(client.chat_postMessage, channel="U0ANA", text="x") == "missing_scope"
    assert not standin.messages(standin.dm_of("U0ANA"))


# --- triggers ------------------------------------------------------------------------------------


def test_a_trigger_opens_one_modal_within_three_seconds(slack: tuple[SlackStandIn, WebClient]) -> None:
    standin, client = slack
    assert (
        refused(client.views_open, trigger_id="12345.made.up", view=modal(section(1))) == "invalid_trigger_id"
    )
    trigger = standin.issue_trigger()
    assert client.views_open(trigger_id=trigger, view=modal(section(1)))["view"]["id"]
    assert refused(client.views_open, trigger_id=trigger, view=modal(section(2))) == "exchanged_trigger_id"
    late = standin.issue_trigger()
    standin.triggers[late] -= 3.5  # issued three and a half seconds ago
    assert refused(client.views_open, trigger_id=late, view=modal(section(3))) == "expired_trigger_id"
    assert len(standin.views) == 1


# --- blocks --------------------------------------------------------------------------------------


def test_fifty_blocks_per_message_and_a_hundred_per_modal_or_home(
    slack: tuple[SlackStandIn, WebClient],
) -> None:
    standin, client = slack
    assert client.chat_postMessage(channel="U0ANA", text="x", blocks=[section(i) for i in range(50)]).get(
        "ok"
    )
    refusal = refused(
        client.chat_postMessage, channel="U0ANA", text="x", blocks=[section(i) for i in range(51)]
    )
    assert refusal == "invalid_blocks"
    home = {"type": "home", "blocks": [section(i) for i in range(100)]}
    assert client.views_publish(user_id="U0ANA", view=home).get("ok")
    home["blocks"].append(section(100))
    assert refused(client.views_publish, user_id="U0ANA", view=home) == "invalid_blocks"
    trigger = standin.issue_trigger()
    too_many = modal(*[section(i) for i in range(101)])
    assert refused(client.views_open, trigger_id=trigger, view=too_many) == "invalid_blocks"


def test_option_values_longer_than_150_characters_are_refused(slack: tuple[SlackStandIn, WebClient]) -> None:
    standin, client = slack

    def select(value: str) -> dict[str, Any]:
        option = {"text": {"type": "plain_text", "text": "A criterion"}, "value": value}
        return {
            "type": "input",
            "block_id": "behaviour",
            "label": {"type": "plain_text", "text": "Behaviour"},
            "element": {
                "type": "static_select",
                "action_id": "b",
                "options": [option],
                "initial_option": option,
            },
        }

    assert client.views_open(trigger_id=standin.issue_trigger(), view=modal(select("k" * 150))).get("ok")
    refusal = refused(client.views_open, trigger_id=standin.issue_trigger(), view=modal(select("k" * 151)))
    assert refusal == "invalid_blocks"


def test_blocks_the_sdk_models_reject_are_invalid_blocks(slack: tuple[SlackStandIn, WebClient]) -> None:
    _, client = slack
    long_button = {
        "type": "actions",
        "elements": [{"type": "button", "text": {"type": "plain_text", "text": "x" * 76}, "action_id": "a"}],
    }
    assert (
        refused(client.chat_postMessage, channel="U0ANA", text="x", blocks=[long_button]) == "invalid_blocks"
    )
    long_text = {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}
    assert refused(client.chat_postMessage, channel="U0ANA", text="x", blocks=[long_text]) == "invalid_blocks"


# --- views.update keeps what inputs hold ---------------------------------------------------------


def test_views_update_keeps_inputs_whose_ids_stay_and_ignores_their_new_initial_value(
    slack: tuple[SlackStandIn, WebClient],
) -> None:
    standin, client = slack
    first = modal(text_input("example", "first example"), text_input("note", "typed later"))
    view_id = client.views_open(trigger_id=standin.issue_trigger(), view=first)["view"]["id"]
    shown = standin.shown_inputs(view_id)
    note = screen.find(shown, "note")
    assert note is not None
    note.enter("what the leader typed")
    second = modal(
        text_input("example", "second example"),  # same ids: the new initial value is ignored
        text_input("note", "replaced?"),
        text_input("action.b2", "fresh action"),  # new ids: shown as given, null until touched
    )
    client.views_update(view_id=view_id, view=second)
    values = screen.state_values(standin.shown_inputs(view_id))
    assert values["example"]["a"]["value"] == "first example"
    assert values["note"]["a"]["value"] == "what the leader typed"
    assert values["action.b2"]["a"]["value"] is None
    changed_action_id = modal(text_input("example", "third example", action_id="other"))
    client.views_update(view_id=view_id, view=changed_action_id)
    assert standin.shown_inputs(view_id)["example"].state["value"] == "third example"
