"""The Jinja2 environment for every piece of text the bot writes."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from bot import wording


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("bot", "templates"),
        autoescape=False,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters["mrkdwn"] = wording.escape_mrkdwn
    env.filters["short_date"] = wording.short_date
    env.filters["mm_ss"] = wording.mm_ss
    env.globals["plural"] = wording.plural
    return env


def render(name: str, **context: Any) -> str:
    return environment().get_template(name).render(**context).strip()
