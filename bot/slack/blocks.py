"""Block Kit builders on `slack_sdk.models`: every block is built and validated by the models, so a
limit breach raises (in tests) instead of reaching Slack. Only a person's own text (names,
comments, examples) is clipped, visibly, with an ellipsis: see `clip` and `escaped`."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    CheckboxesElement,
    ContextBlock,
    DatePickerElement,
    DividerBlock,
    HeaderBlock,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from bot.wording import escape_mrkdwn

Block = dict[str, Any]
MESSAGE_BLOCKS = 50  # Slack: up to 50 blocks in a message, 100 in a modal or Home tab
SURFACE_BLOCKS = 100
MORE = "…and {n} more."


def clip(text: str, limit: int) -> str:
    """A person's own text cut to `limit` characters, visibly."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def escaped(text: str | None, limit: int) -> str:
    """A person's text escaped for mrkdwn, cut (visibly) so that the escaped form fits in `limit`."""
    full = escape_mrkdwn(text or "")
    if len(full) <= limit:
        return full
    out, size = [], 0
    for char in text or "":
        piece = escape_mrkdwn(char)
        if size + len(piece) > limit - 1:
            break
        out.append(piece)
        size += len(piece)
    return "".join(out) + "…"


def link(url: str | None, label: str) -> str:
    """A mrkdwn link labelled `label`, for http(s) URLs only; anything else shows the label alone.
    The URL is percent-encoded, so `|`, `<` and `>` cannot end it early or disguise it."""
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return escape_mrkdwn(label)
    safe = quote(url or "", safe="/:?#[]@$&'()*+,;=%-._~")
    return f"<{safe.replace('&', '&amp;')}|{escape_mrkdwn(label)}>"


def plain(text: str) -> PlainTextObject:
    return PlainTextObject(text=text, emoji=True)


def mrkdwn(text: str) -> MarkdownTextObject:
    return MarkdownTextObject(text=text)


def header(text: str) -> Block:
    return HeaderBlock(text=plain(clip(text, 150))).to_dict()


def section(text: str, *, block_id: str | None = None, accessory: Block | None = None) -> Block:
    return SectionBlock(text=mrkdwn(text), block_id=block_id, accessory=accessory).to_dict()


def fields(*pairs: str) -> Block:
    return SectionBlock(fields=[mrkdwn(p) for p in pairs]).to_dict()


def context(*texts: str) -> Block:
    return ContextBlock(elements=[mrkdwn(t) for t in texts]).to_dict()


def divider() -> Block:
    return DividerBlock().to_dict()


def button(
    text: str, action_id: str, value: str, *, style: str | None = None, url: str | None = None
) -> Block:
    return ButtonElement(text=plain(text), action_id=action_id, value=value, style=style, url=url).to_dict()


def actions(*elements: Block, block_id: str | None = None) -> Block:
    return ActionsBlock(elements=list(elements), block_id=block_id).to_dict()


def option(text: str, value: str, description: str | None = None) -> Block:
    """An option: `text` and `description` may be a person's or the QA platform's words (clipped);
    `value` must be a short reference (Slack allows 150 characters; longer raises)."""
    return Option(
        text=plain(clip(text, 75)),
        value=value,
        description=plain(clip(description, 75)) if description else None,
    ).to_dict("block")


def input_block(
    block_id: str,
    label: str,
    element: Block,
    *,
    optional: bool = False,
    hint: str | None = None,
    dispatch: bool = False,
) -> Block:
    return InputBlock(
        block_id=block_id,
        label=plain(label),
        element=element,
        optional=optional,
        hint=plain(hint) if hint else None,
        dispatch_action=True if dispatch else None,
    ).to_dict()


def text_input(action_id: str, initial: str, *, multiline: bool = True, max_length: int = 3000) -> Block:
    return PlainTextInputElement(
        action_id=action_id,
        initial_value=clip(initial, max_length) if initial else None,
        multiline=multiline,
        max_length=max_length,
    ).to_dict()


def static_select(action_id: str, options: list[Block], initial_value: str | None) -> Block:
    chosen = next((o for o in options if o["value"] == initial_value), None)
    return StaticSelectElement(action_id=action_id, options=options, initial_option=chosen).to_dict()


def datepicker(action_id: str, initial: str) -> Block:
    return DatePickerElement(action_id=action_id, initial_date=initial).to_dict()


def checkboxes(action_id: str, options: list[Block], chosen: list[Block]) -> Block:
    return CheckboxesElement(action_id=action_id, options=options, initial_options=chosen or None).to_dict()


def capped(blocks: list[Block], limit: int = MESSAGE_BLOCKS) -> list[Block]:
    """At most `limit` blocks: the rest become "…and N more." (N: the blocks left out)."""
    if len(blocks) <= limit:
        return blocks
    kept = blocks[: limit - 1]
    return [*kept, context(MORE.format(n=len(blocks) - len(kept)))]


def modal(
    title: str,
    blocks: list[Block],
    *,
    callback_id: str,
    private_metadata: str = "",
    submit: str | None = None,
    close: str = "Close",
) -> Block:
    """A modal; `title` may hold a person's name (clipped to Slack's 24 characters)."""
    return View(
        type="modal",
        callback_id=callback_id,
        title=plain(clip(title, 24)),
        close=plain(close),
        submit=plain(submit) if submit else None,
        blocks=blocks,
        private_metadata=private_metadata,
    ).to_dict()


def home(blocks: list[Block]) -> Block:
    return View(type="home", blocks=blocks).to_dict()
