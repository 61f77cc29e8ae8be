"""The same loop over signed HTTP and over Socket Mode (Bolt's built-in Socket Mode client against
the stand-in's WebSocket endpoint), with the connection recycled and dropped along the way."""

from __future__ import annotations

import json

from bot.standin.client import wait_for
from tests.conftest import Stack
from tests.test_core_loop import ANA, PRIYA, case_state, land, open_plan, texts
from tests.test_home_and_command import coach, open_home


def recycle(stack: Stack, how: str) -> None:
    """Over Socket Mode: Slack asks for a reconnect (`disconnect`), or the connection just drops."""
    endpoint = stack.standin.socket
    if endpoint is None:
        return
    before = endpoint.opened
    if how == "disconnect":
        endpoint.ask_reconnect()
    else:
        endpoint.drop()
        endpoint.wait_connections(before + 1, timeout=30)
    assert endpoint.opened == before + 1 and len(endpoint.connections) == 1


def test_score_to_acknowledgement_over_each_transport(transport_stack: Stack) -> None:
    stack = transport_stack
    case_id = land(stack)
    assert "Your coaching queue" in open_home(stack, PRIYA)  # events_api
    view = open_plan(stack)  # interactive: block_actions, then views.open with its trigger
    recycle(stack, "disconnect")
    status, answer = stack.people.submit(PRIYA, view, {"action": ""})  # the ack carries the errors
    assert status == 200 and answer is not None and answer["response_action"] == "errors"
    assert [k.split(".")[0] for k in answer["errors"]] == ["action"]
    assert stack.people.submit(PRIYA, view) == (200, None)
    assert case_state(stack, case_id) == "agreed"
    stack.sweep()
    recycle(stack, "drop")
    agreement = stack.message(ANA, "agent_agreement")
    stack.people.click(ANA, stack.standin.dm_of(ANA), agreement, "ack_agreement")
    wait_for(lambda: case_state(stack, case_id) == "acknowledged", what="acknowledgement")
    stack.sweep()
    assert "You acknowledged this today" in texts(stack.message(ANA, "agent_agreement"))
    picture = json.dumps(coach(stack, PRIYA, "@Ana Ruiz")["blocks"])  # slash_commands
    assert "Coaching: Ana Ruiz" in picture and "(performance, acknowledged)" in picture


def test_socket_mode_urls_serve_one_connection_and_need_the_app_token(transport_stack: Stack) -> None:
    stack = transport_stack
    endpoint = stack.standin.socket
    if endpoint is None:
        assert not stack.standin.calls_to("apps.connections.open", ok=None)
        return
    opened = stack.standin.calls_to("apps.connections.open")
    assert len(opened) == 1 and opened[0].ok
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError

    with_bot_token = WebClient(token=stack.standin.token, base_url=stack.standin.url)
    try:
        with_bot_token.apps_connections_open(app_token=stack.standin.token)
        raise AssertionError("a bot token opened a Socket Mode connection")
    except SlackApiError as exc:
        assert exc.response["error"] == "invalid_auth"
    # The URL Bolt used is spent: connecting with it again is refused by the endpoint.
    from websockets.exceptions import InvalidStatus, WebSocketException
    from websockets.sync.client import connect

    url = with_bot_token.apps_connections_open(app_token=stack.services.settings.slack_app_token)["url"]
    with connect(url) as first:
        assert json.loads(first.recv(timeout=5))["type"] == "hello"
    try:
        with connect(url) as second:
            second.recv(timeout=5)
        raise AssertionError("a used Socket Mode URL connected again")
    except (InvalidStatus, WebSocketException):
        pass
