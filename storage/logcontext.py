"""The ids that travel with a piece of work into every log line it writes: the HTTP request that
caused it, and the case and outbox row it concerns. An outbox row stores its request id, so the
sweep that sends it (in any process, later) logs under the request that queued it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from storage.unique import token

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
CASE_ID: ContextVar[int | None] = ContextVar("case_id", default=None)
OUTBOX_ID: ContextVar[int | None] = ContextVar("outbox_id", default=None)
_VARS: dict[str, ContextVar[Any]] = {"request_id": REQUEST_ID, "case_id": CASE_ID, "outbox_id": OUTBOX_ID}
_GOOD_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def accept_request_id(given: str | None) -> str:
    """The caller's request id when it is a plain token of up to 64 characters, else a new one."""
    if given and _GOOD_ID.fullmatch(given):
        return given
    return token()


def current() -> dict[str, Any]:
    return {name: var.get() for name, var in _VARS.items()}


@contextmanager
def bound(**ids: Any) -> Iterator[None]:
    """Set some of request_id, case_id, outbox_id for the block (None leaves one as it is)."""
    tokens = [(_VARS[name], _VARS[name].set(value)) for name, value in ids.items() if value is not None]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)
