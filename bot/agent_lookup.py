"""Finding the agent a person means by what they typed after /coach: a mention, a name or an email.

Only agents the viewer may see are candidates, so a name never reveals someone else's agent.
"""

from __future__ import annotations

import re

from sqlalchemy.orm import Session

from bot.errors import NotFound
from bot.roles import roles_of
from storage import queries
from storage.models import Person

MENTION = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
SHOWN = 8


def visible_agents(session: Session, viewer: Person) -> list[Person]:
    """The agents of the teams the viewer leads or oversees, and the viewer if they are an agent."""
    roles = roles_of(session, viewer)
    found: dict[int, Person] = {}
    for team in [*roles.leads, *roles.oversees]:
        for agent in team.agents:
            found[agent.id] = agent
    if roles.agent_of is not None:
        found[viewer.id] = viewer
    return sorted(found.values(), key=lambda p: (p.display.lower(), p.email))


def _words(text: str) -> list[str]:
    return text.lower().split()


def _matches(agent: Person, typed: str) -> int:
    """2: the whole name; 1: each typed word starts a word of the name, in order; 0: no match."""
    name, words = _words(agent.display), _words(typed)
    if name == words:
        return 2
    it = iter(name)
    return 1 if words and all(any(n.startswith(w) for n in it) for w in words) else 0


def find_agent(session: Session, viewer: Person | None, text: str) -> Person:
    """The one agent `text` means, among those `viewer` may see; NotFound says what to type instead."""
    typed = text.strip()
    mention = MENTION.match(typed)
    if mention is not None:
        agent = queries.person_by_slack_id(session, mention.group(1))
        if agent is None or queries.team_of_agent(session, agent.id) is None:
            raise NotFound("That person is not an agent in coachloop's org file.")
        return agent
    typed = typed.lstrip("@").strip()
    if not typed:
        raise NotFound("Name one agent, like `/coach @Ana Ruiz`.")
    candidates = visible_agents(session, viewer) if viewer is not None else []
    if EMAIL.match(typed):
        hits = [a for a in candidates if a.email == typed.lower()]
    else:
        scored = [(_matches(a, typed), a) for a in candidates]
        best = max((score for score, _ in scored), default=0)
        hits = [a for score, a in scored if score == best and best > 0]
    if not hits:
        raise NotFound(
            f"No agent matching {typed!r} among the agents you can see. "
            "Pick them from the list as you type `@`, or give their email."
        )
    if len(hits) > 1:
        names = ", ".join(f"{a.display} ({a.email})" for a in hits[:SHOWN])
        more = f" and {len(hits) - SHOWN} more" if len(hits) > SHOWN else ""
        raise NotFound(
            f"{typed!r} matches more than one agent: {names}{more}. Give the full name or the email."
        )
    return hits[0]
