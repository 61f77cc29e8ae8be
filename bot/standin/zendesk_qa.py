"""A local stand-in of Zendesk QA's Public Export API, written from its published Swagger 2.0
document (`GET {base}/api/export/...` with `Authorization: Bearer <token>`).

It serves workspaces, scorecards and reviews (conversations holding their reviews, with
`pagination: {page, pageSize, total}`; pages count from 0), answers errors as
google.rpc.Status (`{code, message, details}`), and can be told to fail or to be slow.
The `fromDate`/`toDate` window selects reviews by their last update (`updatedISO`).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

# google.rpc.Code
INVALID_ARGUMENT, NOT_FOUND, UNAUTHENTICATED, RESOURCE_EXHAUSTED, UNAVAILABLE, INTERNAL = 3, 5, 16, 8, 14, 13
HTTP_OF = {INVALID_ARGUMENT: 400, NOT_FOUND: 404, UNAUTHENTICATED: 401, RESOURCE_EXHAUSTED: 429,
           UNAVAILABLE: 503, INTERNAL: 500}  # fmt: skip
MAX_PAGE_SIZE = 1000


@dataclass
class Request:
    path: str
    query: dict[str, str]
    status: int
    at: float = field(default_factory=time.monotonic)


def _when(raw: str) -> datetime:
    value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError("no offset")
    return value


class ZendeskQAStandIn:
    def __init__(self, token: str = "zqa-standin", *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.token = token
        self.workspaces: dict[str, str] = {}
        self.scorecards: dict[str, list[dict[str, Any]]] = {}
        self.conversations: dict[str, list[dict[str, Any]]] = {}
        self.requests: list[Request] = []
        self.failures: deque[tuple[int, str]] = deque()  # (google.rpc code, message), one per request
        self.page_delay = 0.0
        self._lock = threading.RLock()
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/qa"

    def __enter__(self) -> ZendeskQAStandIn:
        threading.Thread(target=self._server.serve_forever, name="zendesk-qa-standin", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- the account ---------------------------------------------------------------------------

    def add_workspace(self, workspace: str, name: str, scorecards: list[dict[str, Any]]) -> None:
        with self._lock:
            self.workspaces[workspace] = name
            self.scorecards[workspace] = scorecards
            self.conversations.setdefault(workspace, [])

    def add_review(self, workspace: str, conversation: dict[str, Any], review: dict[str, Any]) -> None:
        """File `review` under the conversation with the same externalId (created if new); a review
        with an id already there replaces it (an edit in Zendesk QA)."""
        with self._lock:
            convs = self.conversations[workspace]
            conv = next((c for c in convs if c["externalId"] == conversation["externalId"]), None)
            if conv is None:
                conv = {**conversation, "reviews": [], "workspaceId": workspace}
                convs.append(conv)
            conv["reviews"] = [r for r in conv["reviews"] if r["id"] != review["id"]] + [review]
            conv["lastUpdatedISO"] = max(r["updatedISO"] for r in conv["reviews"])

    def fail_next(
        self, times: int, code: int = UNAVAILABLE, message: str = "the service is unavailable"
    ) -> None:
        with self._lock:
            self.failures.extend([(code, message)] * times)

    def requests_to(self, suffix: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith(suffix)]

    # -- answers -------------------------------------------------------------------------------

    def _answer(self, path: str, query: dict[str, str], auth: str) -> tuple[int, dict[str, Any]]:
        if auth != f"Bearer {self.token}":
            return self._error(UNAUTHENTICATED, "invalid or missing API token")
        with self._lock:
            if self.failures:
                return self._error(*self.failures.popleft())
        parts = path.strip("/").split("/")
        if parts[:3] != ["qa", "api", "export"]:
            return self._error(NOT_FOUND, f"no route for {path}")
        rest = parts[3:]
        if rest == ["workspaces"]:
            with self._lock:
                found = [{"id": w, "name": n} for w, n in self.workspaces.items()]
            return 200, {"workspaces": found}
        if len(rest) == 3 and rest[0] == "workspace" and rest[2] in ("reviews", "scorecards"):
            workspace = rest[1]
            if not workspace.isdigit():
                return self._error(INVALID_ARGUMENT, f"workspace: invalid int64 value {workspace!r}")
            if workspace not in self.workspaces:
                return self._error(NOT_FOUND, f"workspace {workspace} not found")
            if rest[2] == "scorecards":
                cards = self.scorecards[workspace]
                return 200, {"data": cards, "total": len(cards)}
            return self._reviews(workspace, query)
        return self._error(NOT_FOUND, f"no route for {path}")

    def _reviews(self, workspace: str, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if "fromDate" not in query:
            return self._error(INVALID_ARGUMENT, "fromDate is required")
        try:
            start = _when(query["fromDate"])
            end = _when(query["toDate"]) if "toDate" in query else None
            page = int(query.get("page", "0"))
            size = int(query.get("pageSize", "50"))
        except ValueError as exc:
            return self._error(INVALID_ARGUMENT, f"invalid argument: {exc}")
        if page < 0 or not 0 < size <= MAX_PAGE_SIZE:
            return self._error(INVALID_ARGUMENT, f"page must be >= 0 and pageSize 1..{MAX_PAGE_SIZE}")
        matched = []
        with self._lock:
            for conv in sorted(self.conversations[workspace], key=lambda c: c["lastUpdatedISO"]):
                reviews = [
                    r
                    for r in conv["reviews"]
                    if start <= _when(r["updatedISO"]) and (end is None or _when(r["updatedISO"]) < end)
                ]
                if reviews:
                    matched.append({**conv, "reviews": reviews})
        if self.page_delay:
            time.sleep(self.page_delay)
        chunk = matched[page * size : (page + 1) * size]
        return 200, {
            "conversations": chunk,
            "pagination": {"page": page, "pageSize": size, "total": len(matched)},
        }

    @staticmethod
    def _error(code: int, message: str) -> tuple[int, dict[str, Any]]:
        return HTTP_OF.get(code, 500), {"code": code, "message": message, "details": []}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                parsed = urlparse(self.path)
                query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
                status, body = standin._answer(parsed.path, query, self.headers.get("Authorization", ""))
                with standin._lock:
                    standin.requests.append(Request(parsed.path, query, status))
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(raw)

        return Handler


# -- sample data (tests and the demo) ----------------------------------------------------------


def scorecard(scorecard_id: str, name: str, categories: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": scorecard_id, "name": name, "categories": categories, "groups": []}


def category(
    category_id: str,
    name: str,
    *,
    points: int = 4,
    weight: int = 1,
    critical: bool = False,
    description: str = "",
) -> dict[str, Any]:
    """A rating category on a 1..`points` scale (2 points: 0 and 1, thumbs down and up)."""
    values = [0, 1] if points == 2 else list(range(1, points + 1))
    return {
        "ratingCategoryId": category_id,
        "name": name,
        "description": description,
        "scale": f"SCALE_{points}",
        "weight": weight,
        "critical": critical,
        "ratings": [{"rating": str(v), "description": ""} for v in values],
    }


BILLING_SCORECARD = scorecard(
    "501",
    "Billing calls v3",
    [
        category(
            "9001",
            "Acknowledges the customer's concern",
            weight=2,
            description="Name the frustration before explaining the policy.",
        ),
        category("9002", "Verifies identity before account changes", points=2, weight=3, critical=True),
        category(
            "9003",
            "Confirms next steps and timescales",
            points=5,
            description="Give the date the refund will land, and what to do if it doesn't.",
        ),
    ],
)


def sample_review(
    review_id: str,
    reviewee: str,
    at: datetime,
    *,
    updated: datetime | None = None,
    acknowledge: int | None = 2,
    verify: int | None = 1,
    next_steps: int | None = None,
    score: float | None = 62.5,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(conversation, review) as the reviews export lists them, on BILLING_SCORECARD's scales;
    a rating given as None carries no score (the document marks no rating not applicable: a
    rating without a score is how coachloop reads one)."""

    def rating(cid: str, name: str, value: int | None, **extra: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"categoryId": cid, "categoryName": name, "weight": 1, "critical": False}
        if value is not None:
            out["score"] = value
        return out | extra

    conversation = {
        "externalId": f"T-{review_id}",
        "url": f"https://acme.zendesk.com/qa/conversations/{review_id}",
        "externalUrl": f"https://acme.zendesk.com/agent/tickets/{review_id}",
        "createdAtISO": (at.replace(microsecond=0) - timedelta(hours=2)).isoformat().replace("+00:00", "Z"),
        "sourceType": "zendesk",
    }
    review: dict[str, Any] = {
        "id": review_id,
        "reviewer": {"email": "lee.park@example.com", "name": "Lee Park"},
        "reviewee": {"email": reviewee, "name": reviewee.split("@")[0].replace(".", " ").title()},
        "ratings": [
            rating(
                "9001",
                "Acknowledges the customer's concern",
                acknowledge,
                weight=2,
                groupName="Empathy",
                causes=["Read the policy without acknowledging the frustration"],
            ),
            rating("9002", "Verifies identity before account changes", verify, weight=3, critical=True),
            rating("9003", "Confirms next steps and timescales", next_steps, cause="Said 'soon', no date"),
        ],
        "comment": "",
        "scorecard": {"id": "501", "name": "Billing calls v3"},
        "createdISO": at.isoformat().replace("+00:00", "Z"),
        "updatedISO": (updated or at).isoformat().replace("+00:00", "Z"),
    }
    if score is not None:
        review["score"] = score
    return conversation, review
