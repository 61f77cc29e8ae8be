"""A real HTTP server answering the Web API methods coachloop calls, as Slack answers them
(the methods and their rules are in `methods`). It keeps the workspace (people, conversations with
their messages and metadata, views), records every call, serves Socket Mode on request, and can be
told to misbehave (429 with Retry-After, 500, slow answers, or a given error) for a share of calls.
It holds the bot to Slack's rate limits (`rates`) unless told not to.
Faults that carry the call out and then answer late or never (`slow_answers`, `lost_answers`) stand
for a Slack that did the work while the caller heard nothing.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import random
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from bot.standin import inputs as screen
from bot.standin.limits import ApiError, check_blocks
from bot.standin.methods import WebApiMethods
from bot.standin.rates import RateLimits
from bot.standin.scopes import METHOD_SCOPES, manifest_scopes
from bot.standin.socket_mode import SocketModeEndpoint


@dataclass
class Fault:
    """Misbehave on `method` ("*" for any): mode is ratelimited, server_error, slow or an error code."""

    method: str
    mode: str
    times: int | None = None  # None: for every matching call
    rate: float = 1.0
    retry_after: int = 1
    delay: float = 0.0  # for "slow": the call is carried out, then the answer waits this long
    delay_first: bool = False  # for "slow": wait first, then carry the call out (a slow Slack)
    after_effect: bool = False  # carry the call out, then answer with the fault (a lost response)
    on_call: Callable[[], None] | None = None  # run when the fault fires (e.g. move a test clock on)
    when: Callable[[dict[str, Any]], bool] | None = None  # only for calls whose arguments match
    answer: dict[str, Any] | None = None  # for "malformed": the body answered instead of carrying out


LOST = -1  # dispatch's status for "carried out, then the connection closed with no answer"


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    ok: bool
    error: str | None = None
    at: float = field(default_factory=time.time)


class SlackStandIn(WebApiMethods):
    def __init__(
        self,
        token: str = "xoxb-standin",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        scopes: Iterable[str] | None = None,
        app_token: str | None = None,
        now: Callable[[], float] = time.time,
        rate_limits: bool = True,
    ) -> None:
        self.token = token
        self.app_token = app_token
        self.scopes = set(manifest_scopes() if scopes is None else scopes)  # granted to the bot token
        self.triggers: dict[str, float] = {}  # trigger_id -> issued at (monotonic); removed when used
        self.inputs: dict[str, dict[str, screen.Input]] = {}  # view id -> what its inputs hold on screen
        self.socket: SocketModeEndpoint | None = None  # once `socket_mode` is called
        self.users: dict[str, dict[str, Any]] = {}
        self.channels: dict[
            str, dict[str, Any]
        ] = {}  # id -> {"name", "is_im", "user", "messages", "archived"}
        self.views: dict[str, dict[str, Any]] = {}
        self.calls: list[Call] = []
        self.faults: list[Fault] = []
        self.files: dict[str, dict[str, Any]] = {}
        self._lock = threading.RLock()
        self._seq = itertools.count(1)
        self.now = now  # message timestamps follow this clock (the app's clock, in tests)
        # Slack's limits per method and per channel (bot/standin/rates.py) run on real time, moved on
        # too by whatever a test moves its clock by.
        started = now()
        limits_clock = time.monotonic if now is time.time else lambda: time.monotonic() + now() - started
        self.rate_limits = RateLimits(limits_clock) if rate_limits else None
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"{self.base}/api/"

    @property
    def base(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> SlackStandIn:
        self._thread = threading.Thread(target=self._server.serve_forever, name="slack-standin", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self.socket is not None:
            self.socket.stop()
        self._server.shutdown()
        self._server.server_close()

    def socket_mode(self, app_token: str) -> SocketModeEndpoint:
        """Serve Socket Mode for the app holding `app_token` (xapp-...)."""
        self.app_token = app_token
        if self.socket is None:
            self.socket = SocketModeEndpoint().start()
        return self.socket

    def __enter__(self) -> SlackStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the workspace ----------------------------------------------------------------------

    def add_user(self, user_id: str, email: str, name: str, tz: str = "Europe/London") -> dict[str, Any]:
        from datetime import datetime
        from zoneinfo import ZoneInfo

        offset = datetime.now(ZoneInfo(tz)).utcoffset()
        user = {
            "id": user_id,
            "name": email.split("@")[0],
            "real_name": name,
            "tz": tz,
            "tz_label": tz,
            "tz_offset": int(offset.total_seconds()) if offset else 0,
            "is_bot": False,
            "deleted": False,
            "profile": {"email": email, "real_name": name, "display_name": name.split()[0]},
        }
        with self._lock:
            self.users[user_id] = user
        return user

    def add_channel(
        self,
        channel_id: str,
        name: str,
        *,
        private: bool = False,
        bot_member: bool = False,
        archived: bool = False,
    ) -> None:
        """A channel; the bot is in it only when invited (`bot_member`, or `invite` later)."""
        with self._lock:
            self.channels[channel_id] = {
                "name": name,
                "is_im": False,
                "is_private": private,
                "user": None,
                "messages": [],
                "archived": archived,
                "members": {self.BOT_USER} if bot_member else set(),
            }

    def invite(self, channel_id: str, user_id: str | None = None) -> None:
        """Add someone (the bot, by default) to a channel."""
        with self._lock:
            self.channels[channel_id]["members"].add(user_id or self.BOT_USER)

    def user_says(self, channel_id: str, user_id: str, text: str) -> str:
        """A person writes in a conversation (a DM with the bot, a channel): its `ts`."""
        with self._lock:
            message = {"type": "message", "user": user_id, "text": text, "ts": self._ts()}
            self.channels[channel_id]["messages"].append(message)
        return str(message["ts"])

    def issue_trigger(self) -> str:
        """A trigger_id as Slack issues one with an interaction: single use, valid for 3 seconds."""
        trigger = f"{int(time.time())}.{random.randint(10**11, 10**12 - 1)}.{next(self._seq)}"
        with self._lock:
            self.triggers[trigger] = time.monotonic()
        return trigger

    def shown_inputs(self, view_id: str) -> dict[str, screen.Input]:
        with self._lock:
            return self.inputs.setdefault(view_id, {})

    def add_fault(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def slow_answers(
        self,
        method: str,
        delay: float,
        *,
        rate: float = 1.0,
        on_call: Callable[[], None] | None = None,
        slow_to_act: bool = False,
    ) -> Fault:
        """Carry `method` out, then answer `delay` seconds late (with `slow_to_act`, take the time before
        carrying it out); `on_call` runs as each call is carried out."""
        return self.add_fault(
            Fault(method, "slow", rate=rate, delay=delay, on_call=on_call, delay_first=slow_to_act)
        )

    def lost_answers(self, method: str, *, times: int | None = None, rate: float = 1.0) -> Fault:
        """Carry `method` out, then close the connection without answering (the caller sees a reset)."""
        return self.add_fault(Fault(method, "lost", times=times, rate=rate, after_effect=True))

    def malformed_answers(
        self, method: str, answer: dict[str, Any], *, when: Callable[[dict[str, Any]], bool] | None = None
    ) -> Fault:
        """Answer `method` with `answer` (HTTP 200) without carrying it out: a reply no client expects."""
        return self.add_fault(Fault(method, "malformed", answer=answer, when=when))

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def calls_to(self, method: str, *, ok: bool | None = True) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method and (ok is None or c.ok == ok)]

    def messages(self, channel: str) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.channels.get(channel, {}).get("messages", []))

    def message_by_ts(self, channel: str, ts: str) -> dict[str, Any] | None:
        return next((m for m in self.messages(channel) if m["ts"] == ts), None)

    def view(self, view_id: str) -> dict[str, Any]:
        with self._lock:
            return self.views[view_id]

    def last_view(self) -> dict[str, Any]:
        with self._lock:
            return list(self.views.values())[-1]

    def receive_upload(self, file_id: str, data: bytes) -> bool:
        with self._lock:
            if file_id not in self.files:
                return False
            self.files[file_id]["data"] = data
            return True

    # -- request handling -------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                return

            def _reply(
                self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
            ) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(raw)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(raw)  # the caller may have timed out already

            def do_GET(self) -> None:
                self._handle()

            def do_POST(self) -> None:
                self._handle()

            def _handle(self) -> None:
                parsed = urlparse(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if parsed.path == "/_standin/calls":
                    with standin._lock:
                        calls = [c.__dict__ for c in standin.calls]
                    self._reply(200, {"ok": True, "calls": calls})
                    return
                if parsed.path.startswith("/_standin/respond/"):
                    # A response_url (slash commands, interactions): Slack shows the JSON to the user,
                    # and refuses blocks it would refuse in chat.postMessage.
                    sent = json.loads(raw or b"{}")
                    try:
                        if "blocks" in sent:
                            check_blocks(sent["blocks"])
                    except ApiError as exc:
                        standin._record("response_url", sent, False, exc.error)
                        self._reply(400, {"ok": False, "error": exc.error})
                        return
                    standin._record("response_url", sent, True)
                    self._reply(200, {"ok": True})
                    return
                if parsed.path.startswith("/_standin/upload/"):
                    ok = standin.receive_upload(parsed.path.rsplit("/", 1)[1], raw)
                    self._reply(200 if ok else 404, {"ok": ok})
                    return
                if not parsed.path.startswith("/api/"):
                    self._reply(404, {"ok": False, "error": "unknown_method"})
                    return
                method = parsed.path[len("/api/") :]
                args: dict[str, Any] = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
                ctype = self.headers.get("Content-Type", "")
                if raw and "json" in ctype:
                    try:
                        args.update(json.loads(raw))
                    except ValueError:
                        self._reply(200, {"ok": False, "error": "invalid_json"})
                        return
                elif raw:
                    args.update({k: v[-1] for k, v in parse_qs(raw.decode()).items()})
                status, body, headers = standin.dispatch(method, args, self.headers.get("Authorization", ""))
                if status == LOST:
                    self._hang_up()
                    return
                self._reply(status, body, headers)

            def _hang_up(self) -> None:
                """Close the connection without an answer, as a dropped network path would."""
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)

        return Handler

    def _fault_for(self, method: str, args: dict[str, Any]) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.method not in (method, "*") or (fault.times is not None and fault.times <= 0):
                    continue
                if fault.when is not None and not fault.when(args):
                    continue
                if random.random() >= fault.rate:
                    continue
                if fault.times is not None:
                    fault.times -= 1
                return fault
        return None

    def dispatch(
        self, method: str, args: dict[str, Any], auth: str
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        fault = self._fault_for(method, args)
        if fault is not None and fault.mode == "malformed":
            self._record(method, args, False, "malformed")
            return 200, dict(fault.answer or {}), {}
        if fault is not None and fault.mode != "slow" and not fault.after_effect:
            return self._faulted(method, args, fault)
        if fault is not None and fault.mode == "slow" and fault.delay_first:
            time.sleep(fault.delay)
        try:
            if not auth.startswith("Bearer "):
                raise ApiError("not_authed")
            given = auth[len("Bearer ") :]
            if method == "apps.connections.open":
                if self.app_token is None or given != self.app_token:
                    raise ApiError("invalid_auth")
            elif given != self.token:
                raise ApiError("invalid_auth")
            handler = getattr(self, "m_" + method.replace(".", "_"), None)
            if handler is None:
                raise ApiError("unknown_method", status=404)
            self._need_scope(*METHOD_SCOPES.get(method, ()))
            wait = self.rate_limits.retry_after(method, args) if self.rate_limits is not None else None
            if wait is not None:
                raise ApiError("ratelimited", status=429, headers={"Retry-After": str(wait)})
            with self._lock:
                body = handler(args)
        except ApiError as exc:
            self._record(method, args, False, exc.error)
            body = {"ok": False, "error": exc.error, **exc.extra}
            return exc.status, body, {**self._scope_headers(), **exc.headers}
        self._record(method, args, True)
        if fault is not None and fault.on_call is not None:
            fault.on_call()
        if fault is not None and fault.mode == "slow" and not fault.delay_first:
            time.sleep(fault.delay)  # carried out, but the answer comes late (or never, for the caller)
        elif fault is not None and fault.mode == "lost":
            return LOST, {}, {}
        elif fault is not None and fault.after_effect:
            return self._faulted(method, args, fault, record=False)
        return 200, {"ok": True, **body}, self._scope_headers()

    def _scope_headers(self) -> dict[str, str]:
        """Slack lists the token's granted scopes on every answer (`x-oauth-scopes`)."""
        return {"x-oauth-scopes": ",".join(sorted(self.scopes))}

    def _faulted(
        self, method: str, args: dict[str, Any], fault: Fault, *, record: bool = True
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if fault.mode == "ratelimited":
            status, body, headers = (
                429,
                {"ok": False, "error": "ratelimited"},
                {"Retry-After": str(fault.retry_after)},
            )
        elif fault.mode == "server_error":
            status, body, headers = 500, {"ok": False, "error": "internal_error"}, {}
        else:
            status, body, headers = 200, {"ok": False, "error": fault.mode}, {}
        if record:
            self._record(method, args, False, str(body["error"]))
        return status, body, headers

    def _record(self, method: str, args: dict[str, Any], ok: bool, error: str | None = None) -> None:
        with self._lock:
            self.calls.append(Call(method, args, ok, error))
