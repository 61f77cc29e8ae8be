"""How fast the outbox calls Slack: within the rates Slack documents, and not at all under a limit
while a 429's `Retry-After` runs.

A row that has to wait is given a place in that limit's queue and waits until then. When it comes
due it goes at once, on the place it was given, so a backlog held back by Slack's limits is deferred
about once per row, not each time it comes due again. Places live in the sweeper's memory: after a
restart, or on another sweeper, a row simply takes a new one.
"""

from __future__ import annotations

from datetime import datetime, timedelta

POST = "chat.postMessage"
# chat.postMessage: "1 message per second per channel, short bursts allowed" (ten at once here), under
# a workspace-wide ceiling of "several hundred messages per minute"; the outbox keeps below its low end.
CHANNEL_POSTS_PER_MINUTE = 60
CHANNEL_BURST = 10
POSTS_PER_MINUTE = 240
# Tier 3 (50+ a minute): only the outbox makes these calls.
TIER_3_PER_MINUTE = 50
# views.publish is Tier 4 (100+ a minute) and shared with the Homes people open themselves: the
# outbox's re-publishes keep to 60, leaving the rest to them.
HOME_PUBLISHES_PER_MINUTE = 60
KEPT = 4096  # places (and channels) remembered before the stale ones are looked for
FORGOTTEN_AFTER = timedelta(hours=1)  # a place passed this long ago: its row went elsewhere


class Pace:
    """At most `per_minute` calls a minute, `burst` of them at once (a minute's worth unless said).
    `_next` is when the next call is on time; a call may go early by up to `burst - 1` intervals."""

    def __init__(self, per_minute: float, burst: int | None = None) -> None:
        self.interval = timedelta(seconds=60 / per_minute)
        self.burst = burst if burst is not None else max(1, int(per_minute))
        self._next: datetime | None = None
        self._kept: dict[int, datetime] = {}  # ticket (an outbox row) -> the place it was given
        self._prune_at = KEPT

    def turn(self, now: datetime, ticket: int) -> datetime | None:
        """None when `ticket` may call now (its place is taken), else when its place comes."""
        kept = self._kept.get(ticket)
        if kept is not None:
            if kept > now:
                return kept
            del self._kept[ticket]
            return None
        on_time = max(self._next or now, now)
        place = on_time - (self.burst - 1) * self.interval
        self._next = on_time + self.interval
        if place <= now:
            return None
        if len(self._kept) >= self._prune_at:  # rows that went elsewhere (skipped, another sweeper's)
            self._kept = {t: at for t, at in self._kept.items() if at > now - FORGOTTEN_AFTER}
            self._prune_at = max(KEPT, 2 * len(self._kept))
        self._kept[ticket] = place
        return place

    def idle(self, now: datetime) -> bool:
        """Whether it is as if new: no call counted against it now, and no place kept."""
        return not self._kept and (self._next is None or self._next <= now)


class SlackLimits:
    """The limits one sweeper keeps to, by the name `OutboxSweep` gives a call: a method, or
    `chat.postMessage:<channel>` for a post."""

    def __init__(self) -> None:
        self.paces: dict[str, Pace] = {
            "views.publish": Pace(HOME_PUBLISHES_PER_MINUTE),
            "chat.update": Pace(TIER_3_PER_MINUTE),
            "conversations.open": Pace(TIER_3_PER_MINUTE),
            "conversations.history": Pace(TIER_3_PER_MINUTE),
            POST: Pace(POSTS_PER_MINUTE),
        }
        self._channels: dict[str, Pace] = {}
        self._prune_at = KEPT
        self._held: dict[str, datetime] = {}  # until when a 429 asked to leave a limit alone

    def turn(self, limit: str, ticket: int, now: datetime) -> datetime | None:
        """None when the row `ticket` may make a call under `limit` now, else until when it waits."""
        held = self.held_until(limit, now)
        if held is not None:
            return held
        if limit.startswith(POST + ":"):
            return self._channel(limit, now).turn(now, ticket) or self.paces[POST].turn(now, ticket)
        pace = self.paces.get(limit)
        return pace.turn(now, ticket) if pace is not None else None

    def held_until(self, limit: str, now: datetime) -> datetime | None:
        """Until when a 429 asked to leave `limit` alone, if that is still to come."""
        until = self._held.get(limit)
        return until if until is not None and until > now else None

    def hold(self, limit: str, until: datetime, now: datetime) -> None:
        """Slack answered 429 under `limit`: leave it alone until `until`."""
        self._held = {key: at for key, at in self._held.items() if at > now}
        self._held[limit] = until

    def _channel(self, limit: str, now: datetime) -> Pace:
        pace = self._channels.get(limit)
        if pace is None:
            if len(self._channels) >= self._prune_at:
                self._channels = {key: p for key, p in self._channels.items() if not p.idle(now)}
                self._prune_at = max(KEPT, 2 * len(self._channels))
            pace = self._channels[limit] = Pace(CHANNEL_POSTS_PER_MINUTE, CHANNEL_BURST)
        return pace
