"""Logging an operator can use: plain text for a terminal, or `LOG_FORMAT=json` (one object per line)
with the request, case and outbox ids of the work that wrote it; never a secret or a payload.

What keeps sensitive text out: our own log calls name ids and error codes only; engines hide
statement parameters (storage.db); libraries that log request or response bodies (slack_sdk at
DEBUG, Bolt's warnings about unhandled requests) have those bodies cut here; and every line is
scrubbed of Slack tokens, webhook secrets and the configured secrets before it is written.
"""

from __future__ import annotations

import contextvars
import json
import logging
import queue
import re
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from datetime import UTC, datetime
from typing import IO, Any

from storage.logcontext import current

TOKEN_PATTERNS = re.compile(
    r"xox[a-z]-[A-Za-z0-9-]+|xapp-[A-Za-z0-9-]+|whsec_[A-Za-z0-9+/=]+|Bearer [^\s'\",]+"
)
# Libraries that put request or response bodies in their messages.
PAYLOAD_LOGGERS = ("slack_sdk", "slack_bolt", "coachloop.bolt", "urllib3")
PAYLOAD = re.compile(r"[\[{].*", re.DOTALL)
HIDDEN = "[hidden]"
LIBRARY_LEVELS = {
    "sqlalchemy": logging.WARNING,  # its INFO is every statement
    "alembic": logging.WARNING,  # `coachloop db upgrade` prints what it did
    "apscheduler": logging.WARNING,
    "slack_sdk": logging.INFO,  # its DEBUG is every request body
    "urllib3": logging.INFO,
    "matplotlib": logging.WARNING,
    "PIL": logging.WARNING,
}


class ContextFilter(logging.Filter):
    """Adds request_id, case_id and outbox_id to each record; cuts payloads out of library messages."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in current().items():
            if getattr(record, name, None) is None:
                setattr(record, name, value)
        if record.name.startswith(PAYLOAD_LOGGERS):
            message = record.getMessage()
            cut = PAYLOAD.sub(HIDDEN, message)
            if cut != message:
                record.msg, record.args = cut, ()
        return True


class Scrubber:
    """Removes tokens and the given secrets from a finished line."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    def __call__(self, line: str) -> str:
        line = TOKEN_PATTERNS.sub(HIDDEN, line)
        for secret in self.secrets:
            line = line.replace(secret, HIDDEN)
        return line


class TextFormatter(logging.Formatter):
    def __init__(self, scrub: Scrubber) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(ids)s: %(message)s")
        self.scrub = scrub

    def format(self, record: logging.LogRecord) -> str:
        ids = [
            f"{k}={getattr(record, k)}"
            for k in ("request_id", "case_id", "outbox_id")
            if getattr(record, k, None)
        ]
        record.ids = f" [{' '.join(ids)}]" if ids else ""
        return self.scrub(super().format(record))


class JsonFormatter(logging.Formatter):
    def __init__(self, scrub: Scrubber) -> None:
        super().__init__()
        self.scrub = scrub

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("request_id", "case_id", "outbox_id"):
            value = getattr(record, key, None)
            if value is not None:
                out[key] = value
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return self.scrub(json.dumps(out, ensure_ascii=False, default=str))


class BackgroundHandler(logging.Handler):
    """Formats each record in the thread that logged it (its ids, its arguments as they were) and
    writes the lines from a thread of its own. A write to the stream lets go of the interpreter lock,
    and in `serve` the thread that logged (the event loop, the score intake) would then wait to get it
    back from a busy thread, up to the switch interval, once per line. Lines keep their order; `flush`
    waits for those logged before it, and so does the end of the process."""

    def __init__(self, stream: IO[str]) -> None:
        super().__init__()
        self.stream = stream
        self._lines: queue.SimpleQueue[str | threading.Event] = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._write, name="log-writer", daemon=True)
        self._writer.start()  # logging's own shutdown at exit flushes it

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._lines.put(self.format(record))
        except Exception:  # noqa: BLE001 - logging never raises into the caller
            self.handleError(record)

    def flush(self) -> None:
        if self._writer.is_alive():
            written = threading.Event()
            self._lines.put(written)
            written.wait(timeout=10)

    def _write(self) -> None:
        while True:
            batch = [self._lines.get()]
            with suppress(queue.Empty):
                while len(batch) < 1000:
                    batch.append(self._lines.get_nowait())
            # A stream that fails: these lines have nowhere to go, and the thread lives on for the next
            # ones (were it to end, the queue would grow unread).
            lines = [item for item in batch if isinstance(item, str)]
            with suppress(Exception):
                if lines:
                    self.stream.write("\n".join(lines) + "\n")  # one write for the batch, not one a line
                self.stream.flush()
            for item in batch:
                if isinstance(item, threading.Event):
                    item.set()


def configure(
    env: Mapping[str, str],
    *,
    secrets: Iterable[str] = (),
    stream: IO[str] | None = None,
    background: bool = False,
) -> logging.Handler:
    """Replace the root logger's handlers with one writing LOG_FORMAT (text|json) at LOG_LEVEL;
    `background` writes from a thread of its own (`BackgroundHandler`, for `serve`'s hot threads)."""
    fmt = (env.get("LOG_FORMAT") or "text").strip().lower()
    if fmt not in ("text", "json"):
        raise ValueError(f"LOG_FORMAT {fmt!r} must be text or json")
    level_name = (env.get("LOG_LEVEL") or "INFO").strip().upper()
    level = logging.getLevelName(level_name)
    if not isinstance(level, int):
        raise ValueError(f"LOG_LEVEL {level_name!r} must be DEBUG, INFO, WARNING or ERROR")
    scrub = Scrubber(secrets)
    out = stream or sys.stderr
    handler = BackgroundHandler(out) if background else logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter(scrub) if fmt == "json" else TextFormatter(scrub))
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name, floor in LIBRARY_LEVELS.items():
        logging.getLogger(name).setLevel(max(level, floor))
    return handler


SECRET_SETTINGS = (
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "QA_WEBHOOK_SECRET",
    "SLACK_APP_TOKEN",
    "DATABASE_URL",
)


class ContextExecutor(ThreadPoolExecutor):
    """A thread pool whose tasks run in the submitter's context: a Slack listener that runs after
    the ack still logs under the request that caused it."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        context = contextvars.copy_context()
        return super().submit(context.run, fn, *args, **kwargs)
