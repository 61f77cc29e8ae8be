"""Slack's rate limits, as its documentation states them ("Rate limits"): each Web API method has a tier,
counted per app and workspace, per minute, with bursts tolerated (Tier 1: 1+, Tier 2: 20+, Tier 3: 50+,
Tier 4: 100+ a minute). `chat.postMessage` is special: about one message a second per channel, with
short bursts ("generous burst behavior is also granted"), under a workspace-wide ceiling of several
hundred a minute (the low end here). Over a limit Slack carries nothing out and answers HTTP 429
`ratelimited` with `Retry-After` in seconds.

The documentation gives the steady rates, not the size of the bursts it lets through ("a small amount
of burst behavior is tolerated" even at Tier 1): here a tier lets one minute's allowance through at
once, and never fewer than `TIER_BURST` calls, and a channel `CHANNEL_BURST` messages.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

PER_MINUTE = {1: 1, 2: 20, 3: 50, 4: 100}
TIER_BURST = 5
TIERS = {
    "apps.connections.open": 1,
    "auth.test": 4,
    "chat.postEphemeral": 4,
    "chat.update": 3,
    "conversations.history": 3,
    "conversations.list": 2,
    "conversations.open": 3,
    "files.completeUploadExternal": 4,
    "files.getUploadURLExternal": 4,
    "users.info": 4,
    "users.lookupByEmail": 3,
    "views.open": 4,
    "views.publish": 4,
    "views.push": 4,
    "views.update": 4,
}
POST = "chat.postMessage"
CHANNEL_PER_SECOND = 1.0
CHANNEL_BURST = 10
POSTS_PER_MINUTE = 300  # the workspace-wide ceiling on chat.postMessage ("several hundred a minute")


@dataclass
class _Bucket:
    capacity: float
    per_second: float
    tokens: float
    at: float

    def take(self, now: float) -> int | None:
        """Take one call's token; None when there was one, else the seconds until there is."""
        self.tokens = min(self.capacity, self.tokens + max(0.0, now - self.at) * self.per_second)
        self.at = max(self.at, now)  # a clock set back frees nothing twice
        if self.tokens >= 1:
            self.tokens -= 1
            return None
        return max(1, math.ceil((1 - self.tokens) / self.per_second))


class RateLimits:
    """Whether a call may go through now; the limits of one app in one workspace."""

    def __init__(self, now: Callable[[], float]) -> None:
        self.now = now  # seconds, on any clock that only moves forward
        self.channel_burst, self.channel_per_second = CHANNEL_BURST, CHANNEL_PER_SECOND
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def _bucket(self, key: str, capacity: float, per_second: float, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(capacity, per_second, capacity, now)
        return bucket

    def retry_after(self, method: str, args: dict[str, object]) -> int | None:
        """None when the call may go through (its allowance is taken), else the seconds to wait."""
        with self._lock:
            now = self.now()
            if method == POST:
                channel = str(args.get("channel") or "")
                per_channel = self._bucket(
                    f"{POST}:{channel}", self.channel_burst, self.channel_per_second, now
                )
                workspace = self._bucket(POST, POSTS_PER_MINUTE, POSTS_PER_MINUTE / 60, now)
                wait = per_channel.take(now)
                if wait is not None:
                    return wait
                wait = workspace.take(now)
                if wait is not None:
                    per_channel.tokens += 1  # not carried out: the channel's allowance is not spent
                return wait
            tier = TIERS.get(method)
            if tier is None:
                return None
            allowance = PER_MINUTE[tier]
            return self._bucket(method, max(allowance, TIER_BURST), allowance / 60, now).take(now)
