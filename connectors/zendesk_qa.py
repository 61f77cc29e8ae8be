"""A client of Zendesk QA's Public Export API: paced under the documented limit, retrying what
may pass on a second try, and saying plainly what went wrong otherwise.

The API answers errors as google.rpc.Status (`code`, `message`) and sends no rate-limit
headers, so the client keeps its own pace: at most `per_minute` requests a minute
(the documented limit is 1,500 a minute per IP; the default leaves room for others).
"""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

DOCUMENTED_LIMIT_PER_MINUTE = 1500
DEFAULT_PER_MINUTE = 1200
PAGE_SIZE = 100
FIRST_PAGE = 0
MAX_READS = 3  # readings of one window before a poll gives up on it changing under the pages
SHORTEST_SPLIT = timedelta(seconds=1)  # a window this short is read page by page rather than split

RETRYABLE_STATUS = {408, 429, 500, 502, 503, 504}
# google.rpc.Code values worth a retry: UNKNOWN, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED, UNAVAILABLE
RETRYABLE_CODES = {2, 4, 8, 10, 14}


@dataclass(frozen=True)
class ZendeskQAConnection:
    """Everything the poller needs to reach one account."""

    base_url: str  # https://{subdomain}.zendesk.com/qa (or a stand-in)
    token: str
    workspaces: tuple[str, ...]
    poll_every_minutes: int = 5
    overlap_minutes: int = 15
    first_poll_days_back: int = 1
    page_size: int = PAGE_SIZE


class ExportApiError(Exception):
    def __init__(self, message: str, *, status: int | None = None, code: int | None = None) -> None:
        super().__init__(message)
        self.status, self.code = status, code

    @property
    def retryable(self) -> bool:
        return self.status is None or self.status in RETRYABLE_STATUS or self.code in RETRYABLE_CODES


class Pacer:
    """Spaces requests evenly so that no minute holds more than `per_minute` of them."""

    def __init__(
        self,
        per_minute: int = DEFAULT_PER_MINUTE,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not 0 < per_minute <= DOCUMENTED_LIMIT_PER_MINUTE:
            raise ValueError(f"per_minute must be from 1 to {DOCUMENTED_LIMIT_PER_MINUTE}")
        self.gap = 60.0 / per_minute + 1e-6  # a hair over, so rounding never fits one more in
        self._next = 0.0
        self._lock = threading.Lock()
        self._monotonic, self._sleep = monotonic, sleep

    def wait(self) -> None:
        with self._lock:
            now = self._monotonic()
            start = max(now, self._next)
            self._next = start + self.gap
        if start > now:
            self._sleep(start - now)


def _to_millisecond(at: datetime) -> datetime:
    """`at` without what `iso` leaves out, so that the halves of a split meet exactly."""
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


def _split_after(first_page: list[dict[str, Any]], start: datetime, end: datetime) -> datetime:
    """Where to split a window whose first page is `first_page`: just after that page's latest update,
    so that the first part about fills a page; or, when that is the window's end, at that update, so
    that the many updated at once are set apart; else in the middle."""
    latest = None
    for conversation in first_page:
        with suppress(TypeError, ValueError):
            at = datetime.fromisoformat(str(conversation.get("lastUpdatedISO")).replace("Z", "+00:00"))
            latest = at if latest is None or at > latest else latest
    if latest is not None and latest.tzinfo is not None:
        at = _to_millisecond(latest)
        for split in (at + timedelta(milliseconds=1), at):
            if start < split < end:
                return split
    return _to_millisecond(start + (end - start) / 2)


def iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class ZendeskQAClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        pacer: Pacer | None = None,
        timeout: float = 30.0,
        retries: int = 4,
        backoff_base: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.pacer = pacer or Pacer()
        self.timeout, self.retries, self.backoff_base, self._sleep = timeout, retries, backoff_base, sleep
        self.requests = 0

    # -- the endpoints coachloop uses --------------------------------------------------------

    def workspaces(self) -> list[dict[str, Any]]:
        return list(self.get("/api/export/workspaces").get("workspaces") or [])

    def scorecards(self, workspace: str) -> list[dict[str, Any]]:
        return list(self.get(f"/api/export/workspace/{workspace}/scorecards").get("data") or [])

    def reviews_page(
        self, workspace: str, start: datetime, end: datetime, page: int, page_size: int = PAGE_SIZE
    ) -> dict[str, Any]:
        query = {"fromDate": iso(start), "toDate": iso(end), "page": page, "pageSize": page_size}
        return self.get(f"/api/export/workspace/{workspace}/reviews", query)

    def conversations(
        self, workspace: str, start: datetime, end: datetime, page_size: int = PAGE_SIZE
    ) -> Iterator[dict[str, Any]]:
        """Every conversation with reviews in [start, end), read one request per window where it can be.

        Pages are offsets into the window ordered by last update: a review edited or added while the
        pages are read moves its conversation (out of the window, or to its end), the ones after it
        shift up, and the next page would step over one. One page is one consistent answer, so a window
        whose conversations do not fit on its first page is split in two by time (`_split_after`), and
        each part read the same way; a conversation with reviews in both comes in each with its own.
        Only a window shorter than SHORTEST_SPLIT that still holds more than a page is read page by
        page (`_paged`)."""
        answer = self.reviews_page(workspace, start, end, FIRST_PAGE, page_size)
        batch = list(answer.get("conversations") or [])
        if len(batch) >= int((answer.get("pagination") or {}).get("total") or 0):
            yield from batch
            return
        middle = _split_after(batch, start, end)
        if end - start < SHORTEST_SPLIT or not start < middle < end:
            yield from self._paged(workspace, start, end, page_size)
            return
        yield from self.conversations(workspace, start, middle, page_size)
        yield from self.conversations(workspace, middle, end, page_size)

    def _paged(
        self, workspace: str, start: datetime, end: datetime, page_size: int
    ) -> Iterator[dict[str, Any]]:
        """The window's conversations page by page until `total` is reached. Every page answers the
        window's `total`, and a conversation that moved to the end comes again on a later page: either
        way the window is read again from the first page (what was read already comes again, as
        repeats), at most MAX_READS times, and then ExportApiError says it would not hold still."""
        changes: list[str] = []
        for _ in range(MAX_READS):
            page, seen, total = FIRST_PAGE, 0, None
            ids: set[str] = set()
            while True:
                answer = self.reviews_page(workspace, start, end, page, page_size)
                batch = list(answer.get("conversations") or [])
                now_total = int((answer.get("pagination") or {}).get("total") or 0)
                total = now_total if total is None else total
                again = [c for c in batch if str(c.get("externalId")) in ids]
                if now_total != total or again:
                    changes.append(
                        f"total {total} -> {now_total}" if now_total != total else "a conversation moved"
                    )
                    break  # the window changed under the pages: read it again
                ids.update(str(c.get("externalId")) for c in batch)
                yield from batch
                seen += len(batch)
                if not batch or seen >= total:
                    return
                page += 1
        raise ExportApiError(
            f"the reviews of workspace {workspace} changed while they were read, {MAX_READS} times "
            f"({'; '.join(changes)}); the next poll reads them again"
        )

    # -- transport ---------------------------------------------------------------------------

    def get(self, path: str, query: dict[str, Any] | None = None) -> dict[str, Any]:
        url = self.base_url + path + ("?" + urllib.parse.urlencode(query) if query else "")
        attempt = 0
        while True:
            try:
                return self._once(url)
            except ExportApiError as exc:
                if not exc.retryable or attempt >= self.retries:
                    raise
                delay = self.backoff_base * 2**attempt * random.uniform(0.8, 1.2)
                attempt += 1
                self._sleep(delay)

    def _once(self, url: str) -> dict[str, Any]:
        self.pacer.wait()
        self.requests += 1
        request = urllib.request.Request(
            url, headers={"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raise _status_error(exc.code, exc.read()) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ExportApiError(f"could not reach {urllib.parse.urlsplit(url).netloc}: {reason}") from None
        try:
            body = json.loads(raw)
        except ValueError:
            raise ExportApiError("the answer was not JSON", status=502) from None
        if not isinstance(body, dict):
            raise ExportApiError("the answer was not a JSON object", status=502)
        return body


def _status_error(status: int, raw: bytes) -> ExportApiError:
    code, message = None, ""
    try:
        body = json.loads(raw)
        if isinstance(body, dict):
            code, message = body.get("code"), str(body.get("message") or "")
    except ValueError:
        pass
    hint = {
        401: "the token was refused: check ZENDESK_QA_TOKEN (an API token from Zendesk QA's settings)",
        403: "the token may not read this workspace",
        404: "not found: check the subdomain and the workspace id",
        429: "over the rate limit",
    }.get(status, "")
    text = "; ".join(part for part in (f"HTTP {status}", hint, message) if part)
    return ExportApiError(text, status=status, code=code if isinstance(code, int) else None)
