"""Block Kit as a person reads it on screen, in plain text."""

from __future__ import annotations

import re
from typing import Any

LINK = re.compile(r"<([^|>]+)\|([^>]+)>")


def _text(obj: dict[str, Any] | None) -> str:
    if not obj:
        return ""
    text = obj.get("text", "")
    text = LINK.sub(r"\2", text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _element(el: dict[str, Any]) -> str:
    kind = el.get("type")
    if kind == "button":
        mark = "*" if el.get("style") == "primary" else ""
        return f"[ {mark}{_text(el.get('text'))}{mark} ]"
    if kind == "plain_text_input":
        return f"[{el.get('initial_value', '')}]"
    if kind == "static_select":
        chosen = (el.get("initial_option") or {}).get("value")
        lines = []
        for o in el.get("options", []):
            dot = "(x)" if o["value"] == chosen else "( )"
            desc = f" — {_text(o.get('description'))}" if o.get("description") else ""
            lines.append(f"{dot} {_text(o['text'])}{desc}")
        return "\n      ".join(lines)
    if kind == "datepicker":
        return f"[date {el.get('initial_date', '')}]"
    if kind == "checkboxes":
        chosen = {o["value"] for o in el.get("initial_options", [])}
        return "  ".join(
            f"[{'x' if o['value'] in chosen else ' '}] {_text(o['text'])}" for o in el["options"]
        )
    return f"<{kind}>"


def render_blocks(blocks: list[dict[str, Any]], indent: str = "  ") -> str:
    out: list[str] = []
    for b in blocks:
        kind = b.get("type")
        if kind == "header":
            out.append(f"== {_text(b['text'])} ==")
        elif kind == "section":
            if b.get("text"):
                out.append(_text(b["text"]))
            for f in b.get("fields", []):
                out.append(_text(f))
            if b.get("accessory"):
                out.append(_element(b["accessory"]))
        elif kind == "context":
            out.append("(" + " · ".join(_text(e) for e in b.get("elements", [])) + ")")
        elif kind == "divider":
            out.append("-" * 40)
        elif kind == "actions":
            out.append("  ".join(_element(e) for e in b.get("elements", [])))
        elif kind == "input":
            optional = " (optional)" if b.get("optional") else ""
            out.append(f"{_text(b['label'])}{optional}:\n      {_element(b['element'])}")
        else:
            out.append(f"<{kind} block>")
    return "\n".join(indent + line.replace("\n", "\n" + indent) for line in out)


def render_view(view: dict[str, Any]) -> str:
    title = _text(view.get("title"))
    submit = f"   [ *{_text(view['submit'])}* ]" if view.get("submit") else ""
    return f"  ┌ {title} ┐\n{render_blocks(view.get('blocks', []))}\n  [ {_text(view.get('close'))} ]{submit}"
