"""Small Block Kit builders; every limit that Slack enforces is respected here."""

from __future__ import annotations

from typing import Any

Block = dict[str, Any]


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def plain(text: str, limit: int = 3000) -> dict[str, Any]:
    return {"type": "plain_text", "text": clip(text, limit), "emoji": True}


def mrkdwn(text: str, limit: int = 3000) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": clip(text, limit)}


def header(text: str) -> Block:
    return {"type": "header", "text": plain(text, 150)}


def section(text: str, *, block_id: str | None = None, accessory: Block | None = None) -> Block:
    block: Block = {"type": "section", "text": mrkdwn(text)}
    if block_id:
        block["block_id"] = block_id
    if accessory:
        block["accessory"] = accessory
    return block


def fields(*pairs: str) -> Block:
    return {"type": "section", "fields": [mrkdwn(p, 2000) for p in pairs[:10]]}


def context(*texts: str) -> Block:
    return {"type": "context", "elements": [mrkdwn(t, 3000) for t in texts[:10]]}


def divider() -> Block:
    return {"type": "divider"}


def button(
    text: str, action_id: str, value: str, *, style: str | None = None, url: str | None = None
) -> Block:
    b: Block = {"type": "button", "text": plain(text, 75), "action_id": action_id, "value": clip(value, 2000)}
    if style:
        b["style"] = style
    if url:
        b["url"] = url
    return b


def actions(*elements: Block, block_id: str | None = None) -> Block:
    block: Block = {"type": "actions", "elements": list(elements)[:25]}
    if block_id:
        block["block_id"] = block_id
    return block


def option(text: str, value: str, description: str | None = None) -> Block:
    o: Block = {"text": plain(text, 75), "value": clip(value, 150)}
    if description:
        o["description"] = plain(description, 75)
    return o


def input_block(
    block_id: str,
    label: str,
    element: Block,
    *,
    optional: bool = False,
    hint: str | None = None,
    dispatch: bool = False,
) -> Block:
    block: Block = {
        "type": "input",
        "block_id": block_id,
        "label": plain(label, 2000),
        "element": element,
        "optional": optional,
    }
    if hint:
        block["hint"] = plain(hint, 2000)
    if dispatch:
        block["dispatch_action"] = True
    return block


def text_input(action_id: str, initial: str, *, multiline: bool = True, max_length: int = 3000) -> Block:
    el: Block = {
        "type": "plain_text_input",
        "action_id": action_id,
        "multiline": multiline,
        "max_length": max_length,
    }
    if initial:
        el["initial_value"] = clip(initial, max_length)
    return el


def static_select(action_id: str, options: list[Block], initial_value: str | None) -> Block:
    el: Block = {"type": "static_select", "action_id": action_id, "options": options[:100]}
    chosen = next((o for o in el["options"] if o["value"] == initial_value), None)
    if chosen is not None:
        el["initial_option"] = chosen
    return el


def modal(
    title: str,
    blocks: list[Block],
    *,
    callback_id: str,
    private_metadata: str = "",
    submit: str | None = None,
    close: str = "Close",
) -> Block:
    view: Block = {
        "type": "modal",
        "callback_id": callback_id,
        "title": plain(title, 24),
        "close": plain(close, 24),
        "blocks": blocks[:100],
        "private_metadata": private_metadata,
    }
    if submit:
        view["submit"] = plain(submit, 24)
    return view
