"""Escalation channels in the org file: named by id (C…, G…) or by #name, stored by id.

Slack's methods take conversation ids (`conversations.history` answers `channel_not_found` for a
name), and posting with `chat:write` needs the bot in the channel (`not_in_channel`; a private
channel the bot is not in is invisible to it). The org import resolves names once, through
`conversations.list`, and names every channel the bot cannot post to, with the fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from bot.org import OrgSpec

CHANNEL_ID = re.compile(r"^[CG][A-Z0-9]{6,}$")


@dataclass(frozen=True)
class SlackChannel:
    id: str
    name: str
    is_private: bool
    is_member: bool
    is_archived: bool


class ChannelList(Protocol):
    def channels(self) -> list[SlackChannel]:
        """Every public channel, and every private channel the bot is in."""


def is_channel(value: str) -> bool:
    """An escalation target that names a channel: `#name` or a channel id."""
    return (value.startswith("#") and len(value) > 1) or bool(CHANNEL_ID.match(value))


def _problem(ref: str, channel: SlackChannel | None) -> str | None:
    if channel is None:
        return (
            f"{ref}: no channel of that name the bot can see: check the name; for a private channel, "
            "invite the bot first (/invite @coachloop)"
        )
    if channel.is_archived:
        return f"{ref}: the channel is archived: name another one"
    if not channel.is_member:
        return (
            f"{ref}: the bot is not in this channel: invite it (/invite @coachloop in #{channel.name}), "
            "or add the chat:write.public scope to the app"
        )
    return None


def resolve_channels(spec: OrgSpec, listing: ChannelList | None) -> tuple[OrgSpec, list[str]]:
    """The spec with each escalation channel as its id, and a line for each channel that cannot
    take a post. A channel that cannot be found is left out; without Slack, names stay as given."""
    if listing is None:
        named = sorted({c for t in spec.teams for c in t.escalate_channels if c.startswith("#")})
        return spec, [f"{c}: not resolved to a channel id (SLACK_BOT_TOKEN is not set)" for c in named]
    known = listing.channels()
    by_id = {c.id: c for c in known}
    by_name = {c.name: c for c in known}
    problems: dict[str, str] = {}
    teams = []
    for team in spec.teams:
        ids: list[str] = []
        for ref in team.escalate_channels:
            channel = by_name.get(ref[1:]) if ref.startswith("#") else by_id.get(ref)
            problem = _problem(ref, channel)
            if problem is not None:
                problems[ref] = problem
            if channel is not None and channel.id not in ids:
                ids.append(channel.id)
        teams.append(replace(team, escalate_channels=ids))
    return replace(spec, teams=teams), list(problems.values())
