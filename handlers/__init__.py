"""Thin Slack glue: each module registers its listeners with `register(app, services)`."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from slack_bolt import App

    from bot.app.services import Services


def register_all(app: App, services: Services) -> None:
    from handlers import agreement, command, context, followup, home, plan, practice

    for module in (context, plan, agreement, followup, home, command, practice):
        module.register(app, services)
