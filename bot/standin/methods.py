"""The Web API methods coachloop calls, answered as Slack answers them. They refuse what Slack
refuses, each rule written from Slack's method reference:
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
"""

from __future__ import annotations

import itertools
import json
import random
import time
from collections.abc import Callable
from typing import Any

from bot.standin import inputs as screen
from bot.standin.limits import ApiError, check_blocks, check_view
from bot.standin.scopes import HISTORY_SCOPES, LIST_SCOPES, PUBLIC_POST_SCOPE
from bot.standin.socket_mode import SocketModeEndpoint

HISTORY_CURSOR = "bmV4dF90czox"  # how the stand-in's history cursors begin (Slack's are opaque too)


def _truthy(value: Any) -> bool:
    return value in (True, 1, "1", "true", "True")


class WebApiMethods:
    """`m_<method>` answers `<method>` (dots as underscores) with the fields of an ok response, or
    raises ApiError with Slack's error code; the caller holds the lock."""

    BOT_USER = "U0COACHBOT"
    TRIGGER_LIFETIME = 3.0  # seconds
    users: dict[str, dict[str, Any]]
    channels: dict[str, dict[str, Any]]
    views: dict[str, dict[str, Any]]
    files: dict[str, dict[str, Any]]
    triggers: dict[str, float]
    inputs: dict[str, dict[str, screen.Input]]
    scopes: set[str]
    socket: SocketModeEndpoint | None
    now: Callable[[], float]
    _seq: itertools.count[int]

    @property
    def base(self) -> str:
        """Where the server answers (for upload URLs)."""
        raise NotImplementedError

    def dm_of(self, user_id: str) -> str:
        return f"D{user_id}"

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
        # Newest first, between `oldest` and `latest` (each left out unless `inclusive`), a page of
        # `limit` (at most 999) at a time, the next one from `response_metadata.next_cursor`.
        oldest, latest = float(args.get("oldest") or 0), args.get("latest") or None
        inclusive = _truthy(args.get("inclusive"))
        limit = min(int(args.get("limit") or 100), 999)
        cursor = str(args.get("cursor") or "")
        start = 0
        if cursor:
            if not cursor.startswith(HISTORY_CURSOR) or not cursor[len(HISTORY_CURSOR) :].isdigit():
                raise ApiError("invalid_cursor")
            start = int(cursor[len(HISTORY_CURSOR) :])

        def within(ts: float) -> bool:
            after = ts >= oldest if inclusive else ts > oldest
            before = latest is None or (ts <= float(latest) if inclusive else ts < float(latest))
            return after and before

        found = [m for m in reversed(ch["messages"]) if within(float(m["ts"]))]
        page = found[start : start + limit]
        more = start + limit < len(found)
        with_meta = _truthy(args.get("include_all_metadata"))
        out = []
        for m in page:
            copy = {k: v for k, v in m.items() if k != "metadata" or with_meta}
            if copy.get("metadata") is None:
                copy.pop("metadata", None)
            out.append(copy)
        following = f"{HISTORY_CURSOR}{start + limit}" if more else ""
        return {"messages": out, "has_more": more, "response_metadata": {"next_cursor": following}}

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
