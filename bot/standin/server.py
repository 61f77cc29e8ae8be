"""A real HTTP server answering the Web API methods coachloop calls, as Slack answers them.

It checks the bot token and required arguments, rejects blocks and views that
`slack_sdk.models` rejects (`invalid_blocks`), keeps conversations with their
messages and metadata, records every call, and can be told to misbehave
(429 with Retry-After, 500, slow answers, or a given error) for a share of calls.
Faults that carry the call out and then answer late or never (`slow_answers`,
`lost_answers`) stand for a Slack that did the work while the caller heard nothing.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View


class ApiError(Exception):
    def __init__(self, error: str, status: int = 200, headers: dict[str, str] | None = None) -> None:
        super().__init__(error)
        self.error, self.status, self.headers = error, status, headers or {}


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


def _truthy(value: Any) -> bool:
    return value in (True, 1, "1", "true", "True")


def check_blocks(blocks: Any, *, limit: int = 50) -> None:
    if isinstance(blocks, str):
        try:
            blocks = json.loads(blocks)
        except ValueError:
            raise ApiError("invalid_blocks_format") from None
    if not isinstance(blocks, list) or len(blocks) > limit:
        raise ApiError("invalid_blocks")
    for raw in blocks:
        if not isinstance(raw, dict):
            raise ApiError("invalid_blocks")
        parsed = Block.parse(raw)
        if parsed is None:
            raise ApiError("invalid_blocks")
        try:
            parsed.to_dict()
        except SlackObjectFormationError:
            raise ApiError("invalid_blocks") from None


def check_view(view: Any) -> dict[str, Any]:
    if isinstance(view, str):
        try:
            view = json.loads(view)
        except ValueError:
            raise ApiError("invalid_arguments") from None
    if not isinstance(view, dict) or view.get("type") not in ("modal", "home"):
        raise ApiError("invalid_arguments")
    blocks = view.get("blocks") or []
    check_blocks(blocks, limit=100)
    try:
        View(**{k: v for k, v in view.items() if k in View.attributes | {"type"}}).to_dict()
    except (SlackObjectFormationError, TypeError):
        raise ApiError("invalid_arguments") from None
    if len(view.get("private_metadata") or "") > 3000:
        raise ApiError("invalid_arguments")
    if len(json.dumps(view)) > 250_000:
        raise ApiError("view_too_large")
    return view


class SlackStandIn:
    def __init__(self, token: str = "xoxb-standin", *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.token = token
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
        self._ts_base = int(time.time())
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
        self._server.shutdown()
        self._server.server_close()

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

    def add_channel(self, channel_id: str, name: str, *, archived: bool = False) -> None:
        with self._lock:
            self.channels[channel_id] = {
                "name": name,
                "is_im": False,
                "user": None,
                "messages": [],
                "archived": archived,
            }

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
                    # A response_url (slash commands, interactions): Slack shows the JSON to the user.
                    standin._record("response_url", json.loads(raw or b"{}"), True)
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
            if auth[len("Bearer ") :] != self.token:
                raise ApiError("invalid_auth")
            handler = getattr(self, "m_" + method.replace(".", "_"), None)
            if handler is None:
                raise ApiError("unknown_method", status=404)
            with self._lock:
                body = handler(args)
        except ApiError as exc:
            self._record(method, args, False, exc.error)
            return exc.status, {"ok": False, "error": exc.error}, exc.headers
        self._record(method, args, True)
        if fault is not None and fault.on_call is not None:
            fault.on_call()
        if fault is not None and fault.mode == "slow" and not fault.delay_first:
            time.sleep(fault.delay)  # carried out, but the answer comes late (or never, for the caller)
        elif fault is not None and fault.mode == "lost":
            return LOST, {}, {}
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
        return f"{self._ts_base + next(self._seq)}.{random.randint(0, 999999):06d}"

    @staticmethod
    def _need(args: dict[str, Any], name: str, error: str | None = None) -> Any:
        value = args.get(name)
        if value in (None, ""):
            raise ApiError(error or "invalid_arguments")
        return value

    def _channel(self, ref: str) -> tuple[str, dict[str, Any]]:
        if ref in self.channels:
            return ref, self.channels[ref]
        if ref.startswith("#"):
            for cid, ch in self.channels.items():
                if ch["name"] == ref[1:]:
                    return cid, ch
        if ref in self.users:
            return self._open_im(ref)
        raise ApiError("channel_not_found")

    def _open_im(self, user_id: str) -> tuple[str, dict[str, Any]]:
        cid = self.dm_of(user_id)
        if cid not in self.channels:
            self.channels[cid] = {
                "name": cid,
                "is_im": True,
                "user": user_id,
                "messages": [],
                "archived": False,
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
        cid, ch = self._channel(str(self._need(args, "channel", "channel_not_found")))
        if ch["archived"]:
            raise ApiError("is_archived")
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
        ts = str(self._need(args, "ts", "message_not_found"))
        message = next((m for m in ch["messages"] if m["ts"] == ts), None)
        if message is None:
            raise ApiError("message_not_found")
        fields = self._message_fields(args)
        message.update({k: v for k, v in fields.items() if v is not None})
        message["edited"] = {"user": "U0COACHBOT", "ts": self._ts()}
        return {"channel": cid, "ts": ts, "text": message["text"]}

    def m_chat_postEphemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        self._channel(str(self._need(args, "channel", "channel_not_found")))
        if str(args.get("user")) not in self.users:
            raise ApiError("user_not_in_channel")
        self._message_fields(args)
        return {"message_ts": self._ts()}

    def m_conversations_history(self, args: dict[str, Any]) -> dict[str, Any]:
        cid, ch = self._channel(str(self._need(args, "channel", "channel_not_found")))
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

    def _store_view(self, view: dict[str, Any], view_id: str | None = None, **extra: Any) -> dict[str, Any]:
        view_id = view_id or f"V{next(self._seq):08d}"
        stored = {
            **view,
            "id": view_id,
            "hash": f"{time.time():.6f}.{random.randint(0, 10**8)}",
            "state": {"values": {}},
            **extra,
        }
        self.views[view_id] = stored
        return stored

    def m_views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("trigger_id"):
            raise ApiError("invalid_trigger_id")
        return {"view": self._store_view(check_view(args.get("view")), trigger_id=args["trigger_id"])}

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
