"""Block Kit as Slack accepts it: what `slack_sdk.models` rejects, plus the limits it does not check.

From Slack's Block Kit reference: "up to 50 blocks in each message, and 100 blocks in modals or
Home tabs"; an option object's `value` is at most 150 characters and its text at most 75 (the
models check these on their own objects, but not inside a parsed select's options).
"""

from __future__ import annotations

import json
from typing import Any

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

MESSAGE_BLOCKS = 50
SURFACE_BLOCKS = 100
OPTION_VALUE = 150
OPTION_TEXT = 75


class ApiError(Exception):
    def __init__(
        self,
        error: str,
        status: int = 200,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(error)
        self.error, self.status, self.headers, self.extra = error, status, headers or {}, extra or {}


def _options(node: Any) -> list[dict[str, Any]]:
    """Every option object inside a block (options, option_groups, initial_option(s))."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("options", "initial_options") and isinstance(value, list):
                found += [o for o in value if isinstance(o, dict)]
            elif key == "initial_option" and isinstance(value, dict):
                found.append(value)
            found += _options(value) if key not in ("options", "initial_options", "initial_option") else []
    elif isinstance(node, list):
        for item in node:
            found += _options(item)
    return found


def check_blocks(blocks: Any, *, limit: int = MESSAGE_BLOCKS) -> list[dict[str, Any]]:
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
        for option in _options(raw):
            text = (option.get("text") or {}).get("text", "")
            if len(str(option.get("value", ""))) > OPTION_VALUE or len(text) > OPTION_TEXT:
                raise ApiError("invalid_blocks")
    return blocks


def check_view(view: Any) -> dict[str, Any]:
    if isinstance(view, str):
        try:
            view = json.loads(view)
        except ValueError:
            raise ApiError("invalid_arguments") from None
    if not isinstance(view, dict) or view.get("type") not in ("modal", "home"):
        raise ApiError("invalid_arguments")
    check_blocks(view.get("blocks") or [], limit=SURFACE_BLOCKS)
    try:
        View(**{k: v for k, v in view.items() if k in View.attributes | {"type"}}).to_dict()
    except (SlackObjectFormationError, TypeError):
        raise ApiError("invalid_arguments") from None
    if len(view.get("private_metadata") or "") > 3000:
        raise ApiError("invalid_arguments")
    if len(json.dumps(view)) > 250_000:
        raise ApiError("view_too_large")
    return view
