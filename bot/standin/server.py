"""A real HTTP server answering the Web API methods coachloop calls, as Slack answers them.

It refuses what Slack refuses, each rule written from Slack's method reference:
- the bot token, and the method's scope among those granted (`missing_scope`; by default the
  bot scopes of `manifest.yml`);
- conversation ids where the method takes an id (`conversations.history`, `chat.update`: a
  `#name` is `channel_not_found`; `chat.postMessage` and `chat.postEphemeral` also take a name);
- posting where the bot is not a member: `not_in_channel` for a public channel (unless
  `chat:write.public` is granted), `channel_not_found` for a private one;
- `trigger_id`s: issued per interaction, single use (`exchanged_trigger_id`), gone after 3 s
  (`expired_trigger_id`);
- blocks and views: what `slack_sdk.models` rejects, 50 blocks per message, 100 per modal or
  Home, option values up to 150 characters (`invalid_blocks`);
- `views.update` keeps what the person entered in inputs that keep their ids (see `inputs`).
It keeps conversations with their messages and metadata, records every call, and can be told to
misbehave (429 with Retry-After, 500, slow answers, or a given error) for a share of calls.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from bot.standin import inputs as screen
from bot.standin.limits import ApiError, check_blocks, check_view
from bot.standin.scopes import (
    HISTORY_SCOPES,
    LIST_SCOPES,
    METHOD_SCOPES,
    PUBLIC_POST_SCOPE,
    manifest_scopes,
)
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
    after_effect: bool = False  # carry the call out, then answer with the fault (a lost response)


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    ok: bool
    error: str | None = None
    at: float = field(default_factory=time.time)


def _truthy(value: Any) -> bool:
    return value in (True, 1, "1", "true", "True")


class SlackStandIn:
    BOT_USER = "U0COACHBOT"
    TRIGGER_LIFETIME = 3.0  # seconds

    def __init__(
        self,
        token: str = "xoxb-standin",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        scopes: frozenset[str] | None = None,
        app_token: str | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.token = token
        self.app_token = app_token
        self.scopes = manifest_scopes() if scopes is None else scopes
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

    def invite(self, channel_id: str, user_id: str = BOT_USER) -> None:
        with self._lock:
            self.channels[channel_id]["members"].add(user_id)

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

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def calls_to(self, method: str, *, ok: bool | None = True) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method and (ok is None or c.ok == ok)]

    def messages(self, channel: str) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.channels.get(channel, {}).get("messages", []))

    def dm_of(self, user_id: str) -> str:
        return f"D{user_id}"

    def message_by_ts(self, channel: str, ts: str) -> dict[str, Any] | None:
        return next((m for m in self.messages(channel) if m["ts"] == ts), None)

    def view(self, view_id: str) -> dict[str, Any]:
        with self._lock:
            return self.views[view_id]

    def last_view(self) -> dict[str, Any]:
        with self._lock:
            return list(self.views.values())[-1]

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
                self._reply(status, body, headers)

        return Handler

    def _fault_for(self, method: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.method not in (method, "*") or (fault.times is not None and fault.times <= 0):
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
        fault = self._fault_for(method)
        if fault is not None and fault.mode != "slow" and not fault.after_effect:
            return self._faulted(method, args, fault)
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
            with self._lock:
                body = handler(args)
        except ApiError as exc:
            self._record(method, args, False, exc.error)
            return exc.status, {"ok": False, "error": exc.error, **exc.extra}, exc.headers
        self._record(method, args, True)
        if fault is not None and fault.mode == "slow":
            time.sleep(fault.delay)  # carried out, but the answer comes late (or never, for the caller)
        elif fault is not None and fault.after_effect:
            return self._faulted(method, args, fault, record=False)
        return 200, {"ok": True, **body}, {}

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

    def _ts(self) -> str:
        return f"{int(self.now())}.{next(self._seq):06d}"

    @staticmethod
    def _need(args: dict[str, Any], name: str, error: str | None = None) -> Any:
        value = args.get(name)
        if value in (None, ""):
            raise ApiError(error or "invalid_arguments")
        return value

    def _need_scope(self, *any_of: str) -> None:
        if any_of and not set(any_of) & self.scopes:
            raise ApiError(
                "missing_scope", extra={"needed": ",".join(any_of), "provided": ",".join(sorted(self.scopes))}
            )

    def _channel(self, ref: str, *, by_name: bool = False) -> tuple[str, dict[str, Any]]:
        """The conversation `ref` names: an id; a `#name` or a user id only where the method takes one.
        A private channel the bot is not in does not exist, for the bot."""
        found: tuple[str, dict[str, Any]] | None = None
        if ref in self.channels:
            found = ref, self.channels[ref]
        elif by_name and ref.startswith("#"):
            found = next(
                ((c, ch) for c, ch in self.channels.items() if not ch["is_im"] and ch["name"] == ref[1:]),
                None,
            )
        elif by_name and ref in self.users:
            found = self._open_im(ref)
        if found is None or (found[1].get("is_private") and self.BOT_USER not in found[1]["members"]):
            raise ApiError("channel_not_found")
        return found

    def _may_post(self, ch: dict[str, Any]) -> None:
        if ch["is_im"] or self.BOT_USER in ch["members"]:
            return
        if not ch["is_private"] and PUBLIC_POST_SCOPE in self.scopes:
            return
        raise ApiError("not_in_channel")

    def _open_im(self, user_id: str) -> tuple[str, dict[str, Any]]:
        cid = self.dm_of(user_id)
        if cid not in self.channels:
            self.channels[cid] = {
                "name": cid,
                "is_im": True,
                "is_private": True,
                "user": user_id,
                "messages": [],
                "archived": False,
                "members": {self.BOT_USER, user_id},
            }
        return cid, self.channels[cid]

    # -- methods ----------------------------------------------------------------------------

    def m_auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": "https://standin.slack.test/",
            "team": "Stand-in",
            "user": "coachloop",
            "team_id": "T0STANDIN",
            "user_id": "U0COACHBOT",
            "bot_id": "B0COACHBOT",
        }

    def m_apps_connections_open(self, args: dict[str, Any]) -> dict[str, Any]:
        # The app-level token (checked in dispatch) carries connections:write.
        if self.socket is None:
            raise ApiError("invalid_auth")
        return {"url": self.socket.new_url()}

    def m_users_lookupByEmail(self, args: dict[str, Any]) -> dict[str, Any]:
        email = str(self._need(args, "email")).lower()
        for user in self.users.values():
            if user["profile"]["email"].lower() == email:
                return {"user": user}
        raise ApiError("users_not_found")

    def m_users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        user = self.users.get(str(self._need(args, "user")))
        if user is None:
            raise ApiError("user_not_found")
        return {"user": user}

    def m_conversations_open(self, args: dict[str, Any]) -> dict[str, Any]:
        users = str(args.get("users") or "")
        if not users:
            raise ApiError("users_list_not_supplied")
        user_id = users.split(",")[0]
        if user_id not in self.users:
            raise ApiError("user_not_found")
        cid, _ = self._open_im(user_id)
        return {"channel": {"id": cid}}

    def _message_fields(self, args: dict[str, Any]) -> dict[str, Any]:
        text = args.get("text")
        blocks = args.get("blocks")
        if not text and not blocks:
            raise ApiError("no_text")
        if blocks is not None:
            check_blocks(blocks)
            if isinstance(blocks, str):
                blocks = json.loads(blocks)
        metadata = args.get("metadata")
        if isinstance(metadata, str):
            try:
                metadata = json.loads(metadata)
            except ValueError:
                raise ApiError("invalid_metadata_format") from None
        if metadata is not None and (
            not isinstance(metadata, dict)
            or not isinstance(metadata.get("event_type"), str)
            or not isinstance(metadata.get("event_payload"), dict)
        ):
            raise ApiError("invalid_metadata_format")
        if text and len(str(text)) > 40000:
            raise ApiError("msg_too_long")
        return {"text": text or "", "blocks": blocks or [], "metadata": metadata}

    def m_chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        cid, ch = self._channel(str(self._need(args, "channel", "channel_not_found")), by_name=True)
        if ch["archived"]:
            raise ApiError("is_archived")
        self._may_post(ch)
        message = {
            "type": "message",
            "user": "U0COACHBOT",
            "bot_id": "B0COACHBOT",
            "ts": self._ts(),
            **self._message_fields(args),
        }
        ch["messages"].append(message)
        return {"channel": cid, "ts": message["ts"], "message": message}

    def m_chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        cid, ch = self._channel(str(self._need(args, "channel", "channel_not_found")))
        self._may_post(ch)
        ts = str(self._need(args, "ts", "message_not_found"))
        message = next((m for m in ch["messages"] if m["ts"] == ts), None)
        if message is None:
            raise ApiError("message_not_found")
        fields = self._message_fields(args)
        message.update({k: v for k, v in fields.items() if v is not None})
        message["edited"] = {"user": "U0COACHBOT", "ts": self._ts()}
        return {"channel": cid, "ts": ts, "text": message["text"]}

    def m_chat_postEphemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        self._channel(str(self._need(args, "channel", "channel_not_found")), by_name=True)
        if str(args.get("user")) not in self.users:
            raise ApiError("user_not_in_channel")
        self._message_fields(args)
        return {"message_ts": self._ts()}

    def m_conversations_history(self, args: dict[str, Any]) -> dict[str, Any]:
        cid, ch = self._channel(str(self._need(args, "channel", "channel_not_found")))
        kind = "im" if ch["is_im"] else "private" if ch["is_private"] else "public"
        self._need_scope(HISTORY_SCOPES[kind])
        if self.BOT_USER not in ch["members"]:
            raise ApiError("not_in_channel")
        oldest = float(args.get("oldest") or 0)
        limit = int(args.get("limit") or 100)
        with_meta = _truthy(args.get("include_all_metadata"))
        found = [m for m in reversed(ch["messages"]) if float(m["ts"]) >= oldest][:limit]
        out = []
        for m in found:
            copy = {k: v for k, v in m.items() if k != "metadata" or with_meta}
            if copy.get("metadata") is None:
                copy.pop("metadata", None)
            out.append(copy)
        return {"messages": out, "has_more": False}

    def m_conversations_list(self, args: dict[str, Any]) -> dict[str, Any]:
        types = [t.strip() for t in str(args.get("types") or "public_channel").split(",") if t.strip()]
        for kind in types:
            if kind not in LIST_SCOPES:
                raise ApiError("invalid_types")
            self._need_scope(LIST_SCOPES[kind])
        skip_archived = _truthy(args.get("exclude_archived"))
        listed = []
        for cid, ch in self.channels.items():
            kind = "im" if ch["is_im"] else "private_channel" if ch["is_private"] else "public_channel"
            member = self.BOT_USER in ch["members"]
            if kind not in types or (skip_archived and ch["archived"]) or (ch["is_private"] and not member):
                continue
            if ch["is_im"]:
                listed.append({"id": cid, "is_im": True, "user": ch["user"]})
                continue
            listed.append(
                {
                    "id": cid,
                    "name": ch["name"],
                    "is_channel": not ch["is_private"],
                    "is_group": ch["is_private"],
                    "is_private": ch["is_private"],
                    "is_archived": ch["archived"],
                    "is_member": member,
                }
            )
        start = int(args.get("cursor") or 0)
        limit = min(int(args.get("limit") or 100), 1000)
        page = listed[start : start + limit]
        more = start + limit < len(listed)
        return {"channels": page, "response_metadata": {"next_cursor": str(start + limit) if more else ""}}

    def _store_view(self, view: dict[str, Any], view_id: str | None = None, **extra: Any) -> dict[str, Any]:
        view_id = view_id or f"V{next(self._seq):08d}"
        before = self.inputs.get(view_id) if view_id in self.views else None
        self.inputs[view_id] = screen.shown(view, before)
        stored = {
            **view,
            "id": view_id,
            "hash": f"{time.time():.6f}.{random.randint(0, 10**8)}",
            "state": {"values": {}},
            **extra,
        }
        self.views[view_id] = stored
        return stored

    def _use_trigger(self, trigger: str) -> None:
        issued = self.triggers.pop(trigger, None)
        if issued is None:
            used = any(v.get("trigger_id") == trigger for v in self.views.values())
            raise ApiError("exchanged_trigger_id" if used else "invalid_trigger_id")
        if time.monotonic() - issued > self.TRIGGER_LIFETIME:
            raise ApiError("expired_trigger_id")

    def m_views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        trigger = str(self._need(args, "trigger_id", "invalid_trigger_id"))
        view = check_view(args.get("view"))
        self._use_trigger(trigger)
        return {"view": self._store_view(view, trigger_id=trigger)}

    def m_views_push(self, args: dict[str, Any]) -> dict[str, Any]:
        return self.m_views_open(args)

    def m_views_update(self, args: dict[str, Any]) -> dict[str, Any]:
        view_id = str(args.get("view_id") or "")
        if view_id not in self.views:
            raise ApiError("not_found")
        if args.get("hash") and args["hash"] != self.views[view_id]["hash"]:
            raise ApiError("hash_conflict")
        return {"view": self._store_view(check_view(args.get("view")), view_id)}

    def m_views_publish(self, args: dict[str, Any]) -> dict[str, Any]:
        user_id = str(self._need(args, "user_id"))
        if user_id not in self.users:
            raise ApiError("user_not_found")
        view = check_view(args.get("view"))
        if view.get("type") != "home":
            raise ApiError("invalid_arguments")
        return {"view": self._store_view(view, f"VHOME{user_id}", user_id=user_id)}

    def receive_upload(self, file_id: str, data: bytes) -> bool:
        with self._lock:
            if file_id not in self.files:
                return False
            self.files[file_id]["data"] = data
            return True

    def m_files_getUploadURLExternal(self, args: dict[str, Any]) -> dict[str, Any]:
        file_id = f"F{next(self._seq):08d}"
        self.files[file_id] = {
            "name": self._need(args, "filename"),
            "length": int(self._need(args, "length")),
        }
        return {"upload_url": f"{self.base}/_standin/upload/{file_id}", "file_id": file_id}

    def m_files_completeUploadExternal(self, args: dict[str, Any]) -> dict[str, Any]:
        files = args.get("files")
        if isinstance(files, str):
            files = json.loads(files)
        if not isinstance(files, list) or not files:
            raise ApiError("invalid_arguments")
        out = []
        for f in files:
            if f.get("id") not in self.files or "data" not in self.files[f["id"]]:
                raise ApiError("file_not_found")
            channel = args.get("channel_id")
            if channel and channel not in self.channels:
                raise ApiError("channel_not_found")
            self.files[f["id"]].update(title=f.get("title"), channel=channel)
            out.append({"id": f["id"], "title": f.get("title")})
        return {"files": out}
