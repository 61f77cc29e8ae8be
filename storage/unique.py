"""Unique tokens for request ids and the outbox's one-off dedupe keys, without a system call each.

`uuid.uuid4()` reads the kernel's random source every time, and CPython lets go of the interpreter
lock for that read; a thread that does so on every request (the event loop, the score intake) then
waits to get the lock back from whichever thread took it, up to the switch interval each time. A
token here is a random prefix drawn once per process (again in a forked child) and a counter."""

from __future__ import annotations

import itertools
import os

_PREFIX_BYTES = 8  # 64 random bits per process: two processes' prefixes do not meet in practice


def _fresh() -> None:
    global _prefix, _counter
    _prefix = os.urandom(_PREFIX_BYTES).hex()
    _counter = itertools.count()


_prefix: str
_counter: itertools.count[int]
_fresh()
os.register_at_fork(after_in_child=_fresh)


def token() -> str:
    """A token no other call in any process returns (hex digits; 17 to 32 characters)."""
    return f"{_prefix}{next(_counter):x}"
