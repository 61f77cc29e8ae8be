"""What Slack's own client sends when people click and type: signed payloads to /slack/events."""

from __future__ import annotations

import copy
import json
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar

from slack_sdk.signature import SignatureVerifier

from bot.standin import inputs as screen
from bot.standin.server import SlackStandIn

T = TypeVar("T")


def wait_for(check: Callable[[], T | None], *, timeout: float = 5.0, what: str = "condition") -> T:
    """Poll until `check` returns something truthy (listeners run after their ack)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _entered(inputs: dict[str, screen.Input], changes: dict[str, Any]) -> None:
    """Type or pick `changes` (by block id, or block id before a '.' suffix) into the inputs shown."""
    for name, given in changes.items():
        found = screen.find(inputs, name)
        if found is None:
            raise LookupError(f"no input {name!r} in the modal")
        found.enter(given)


def find_button(
    blocks: list[dict[str, Any]], action_id: str, value: str | None = None
) -> tuple[dict[str, Any], str]:
    """A button (in an actions block or as a section's accessory) and its block id."""
    for block in blocks:
        elements = block.get("elements", []) if block.get("type") == "actions" else []
        if block.get("type") == "section" and block.get("accessory"):
            elements = [block["accessory"]]
        for el in elements:
            if el.get("action_id") == action_id and (value is None or el.get("value") == value):
                return el, block.get("block_id", "b")
    raise LookupError(f"no button {action_id!r}" + (f" with value {value!r}" if value else ""))


class SlackUserAgent:
    """Plays people in the workspace: signs and posts the payloads their clicks produce."""

    def __init__(
        self, app_url: str, signing_secret: str, standin: SlackStandIn, *, socket_mode: bool = False
    ) -> None:
        """`socket_mode`: deliver over the stand-in's Socket Mode endpoint instead of signed HTTP."""
        self.app_url = app_url.rstrip("/")
        self.verifier = SignatureVerifier(signing_secret)
        self.standin = standin
        self.socket_mode = socket_mode

    def _deliver(
        self, kind: str, payload: dict[str, Any], body: str, content_type: str, **kw: Any
    ) -> tuple[int, str]:
        """As an envelope over Socket Mode (the ack's payload is the answer), or as a signed POST."""
        if self.socket_mode:
            assert self.standin.socket is not None, "the stand-in serves no Socket Mode endpoint"
            ack = self.standin.socket.deliver(kind, payload)
            return 200, json.dumps(ack["payload"]) if ack.get("payload") else ""
        return self.post(body, content_type, **kw)

    def post(
        self,
        body: str,
        content_type: str,
        *,
        sign: bool = True,
        timestamp: int | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> tuple[int, str]:
        ts = str(timestamp if timestamp is not None else int(time.time()))
        headers = {"Content-Type": content_type, "X-Slack-Request-Timestamp": ts}
        signature = self.verifier.generate_signature(timestamp=ts, body=body)
        if sign and signature:
            headers["X-Slack-Signature"] = signature
        headers.update(extra_headers or {})
        req = urllib.request.Request(f"{self.app_url}/slack/events", data=body.encode(), headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def interact(self, payload: dict[str, Any], **kw: Any) -> tuple[int, str]:
        body = urllib.parse.urlencode({"payload": json.dumps(payload)})
        return self._deliver("interactive", payload, body, "application/x-www-form-urlencoded", **kw)

    def _user(self, user_id: str) -> dict[str, Any]:
        user = self.standin.users.get(user_id, {"name": user_id})
        return {"id": user_id, "username": user["name"], "name": user["name"], "team_id": "T0STANDIN"}

    def click(
        self,
        user_id: str,
        channel: str,
        message: dict[str, Any],
        action_id: str,
        *,
        value: str | None = None,
    ) -> str:
        """Click a button in a message (the one with `value`, when several share the action id);
        returns the trigger id Slack issued."""
        where = {
            "container": {
                "type": "message",
                "message_ts": message["ts"],
                "channel_id": channel,
                "is_ephemeral": False,
            },
            "channel": {"id": channel, "name": "directmessage"},
            "message": message,
            "response_url": f"{self.standin.base}/_standin/respond/{secrets.token_hex(4)}",
        }
        return self._block_action(user_id, message.get("blocks", []), action_id, value, where)

    def _block_action(
        self,
        user_id: str,
        blocks: list[dict[str, Any]],
        action_id: str,
        value: str | None,
        where: dict[str, Any],
    ) -> str:
        """Send the `block_actions` payload of a click on the button in `blocks` (`where`: the container
        and what comes with it); returns the trigger id Slack issued."""
        button, block_id = find_button(blocks, action_id, value)
        trigger = self.standin.issue_trigger()
        payload = {
            "type": "block_actions",
            "user": self._user(user_id),
            "api_app_id": "A0COACH",
            "token": "legacy",
            "trigger_id": trigger,
            "team": {"id": "T0STANDIN", "domain": "standin"},
            **where,
            "actions": [
                {
                    "type": "button",
                    "action_id": action_id,
                    "block_id": block_id,
                    "value": button.get("value"),
                    "text": button["text"],
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }
        status, _ = self.interact(payload)
        if status != 200:
            raise RuntimeError(f"the app answered {status} to a click")
        return trigger

    def open_modal(
        self,
        user_id: str,
        channel: str,
        message: dict[str, Any],
        action_id: str,
        *,
        value: str | None = None,
    ) -> dict[str, Any]:
        """Click a button that opens a modal; returns the modal once the app has opened it."""
        trigger = self.click(user_id, channel, message, action_id, value=value)
        return self.opened_with(trigger, action_id)

    def opened_with(self, trigger: str, what: str) -> dict[str, Any]:
        """The modal the app opened with `trigger` (waits for it)."""

        def opened() -> dict[str, Any] | None:
            with self.standin._lock:
                return next((v for v in self.standin.views.values() if v.get("trigger_id") == trigger), None)

        return wait_for(opened, what=f"the modal {what} opens")

    def click_home(self, user_id: str, action_id: str, *, value: str | None = None) -> str:
        """Click a button on the person's published App Home; returns the trigger id."""
        home = self.standin.view(f"VHOME{user_id}")
        where = {"container": {"type": "view", "view_id": home["id"]}, "view": home}
        return self._block_action(user_id, home.get("blocks", []), action_id, value, where)

    def message_shortcut(self, user_id: str, channel: str, message: dict[str, Any], callback_id: str) -> str:
        """Use a message shortcut on `message` (Slack's `message_action` payload); returns the trigger id."""
        trigger = self.standin.issue_trigger()
        payload = {
            "type": "message_action",
            "token": "legacy",
            "action_ts": f"{time.time():.6f}",
            "team": {"id": "T0STANDIN", "domain": "standin"},
            "user": self._user(user_id),
            "channel": {"id": channel, "name": self.standin.channels.get(channel, {}).get("name", "")},
            "is_enterprise_install": False,
            "callback_id": callback_id,
            "trigger_id": trigger,
            "response_url": f"{self.standin.base}/_standin/respond/{secrets.token_hex(4)}",
            "message_ts": message["ts"],
            "message": message,
        }
        status, _ = self.interact(payload)
        if status != 200:
            raise RuntimeError(f"the app answered {status} to a shortcut")
        return trigger

    def choose(
        self,
        user_id: str,
        view: dict[str, Any],
        block_id: str,
        value: str,
        entered: dict[str, Any] | None = None,
    ) -> None:
        """Pick an option in a modal's select that dispatches an action (`entered`: what was typed before)."""
        inputs = self.standin.shown_inputs(view["id"])
        _entered(inputs, {**(entered or {}), block_id: value})
        chosen = screen.find(inputs, block_id)
        assert chosen is not None
        current = self.standin.view(view["id"])
        payload = {
            "type": "block_actions",
            "user": self._user(user_id),
            "api_app_id": "A0COACH",
            "trigger_id": self.standin.issue_trigger(),
            "team": {"id": "T0STANDIN"},
            "container": {"type": "view", "view_id": view["id"]},
            "view": {**current, "state": {"values": screen.state_values(inputs)}},
            "actions": [
                {
                    "type": "static_select",
                    "action_id": chosen.action_id,
                    "block_id": chosen.block_id,
                    "selected_option": chosen.state["selected_option"],
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }
        self.interact(payload)

    def submit(
        self,
        user_id: str,
        view: dict[str, Any],
        overrides: dict[str, Any] | None = None,
        *,
        private_metadata: str | None = None,
    ) -> tuple[int, dict[str, Any] | None]:
        """Submit a modal as it is on screen with `overrides` typed in (not kept for a later submission);
        returns the status and the response_action body."""
        inputs = copy.deepcopy(self.standin.shown_inputs(view["id"]))
        _entered(inputs, overrides or {})
        sent_view = {
            **view,
            "state": {"values": screen.state_values(inputs)},
            "private_metadata": view.get("private_metadata", "")
            if private_metadata is None
            else private_metadata,
        }
        payload = {
            "type": "view_submission",
            "user": self._user(user_id),
            "api_app_id": "A0COACH",
            "team": {"id": "T0STANDIN"},
            "trigger_id": self.standin.issue_trigger(),
            "view": sent_view,
            "response_urls": [],
        }
        status, text = self.interact(payload)
        return status, json.loads(text) if text.strip() else None

    def event(self, event: dict[str, Any], **kw: Any) -> tuple[int, str]:
        body = {
            "type": "event_callback",
            "team_id": "T0STANDIN",
            "api_app_id": "A0COACH",
            "event": {**event, "event_ts": f"{time.time():.6f}"},
            "event_id": f"Ev{secrets.token_hex(5).upper()}",
            "event_time": int(time.time()),
        }
        return self._deliver("events_api", body, json.dumps(body), "application/json", **kw)

    def command(
        self, user_id: str, command: str, text: str = "", channel: str = "C0GENERAL"
    ) -> tuple[int, str]:
        fields = {
            "token": "legacy",
            "team_id": "T0STANDIN",
            "channel_id": channel,
            "user_id": user_id,
            "user_name": self.standin.users.get(user_id, {}).get("name", user_id),
            "command": command,
            "text": text,
            "api_app_id": "A0COACH",
            "trigger_id": self.standin.issue_trigger(),
            "response_url": f"{self.standin.base}/_standin/respond/{secrets.token_hex(4)}",
        }
        return self._deliver(
            "slash_commands", fields, urllib.parse.urlencode(fields), "application/x-www-form-urlencoded"
        )
