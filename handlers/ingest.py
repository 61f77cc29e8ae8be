"""POST /webhooks/qa: signed "evaluation v1" scores from a QA platform.

Signatures follow Standard Webhooks (HMAC-SHA256 over "id.timestamp.body"); the
timestamp tolerance is checked against the injected clock.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from standardwebhooks import Webhook
from starlette.requests import Request
from starlette.responses import JSONResponse

from bot.app.services import Services
from bot.evaluation_input import PayloadErrors, parse_evaluation
from bot.metrics import WEBHOOKS
from handlers.intake_writer import IntakeWriter
from storage import logcontext

log = logging.getLogger("coachloop.ingest")
MAX_BODY = 1024 * 1024
TOLERANCE_SECONDS = 5 * 60


class Unauthorized(Exception):
    pass


def verify_signature(secret: str, headers: Any, body: str, now: datetime) -> None:
    msg_id = headers.get("webhook-id")
    stamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not (msg_id and stamp and signatures):
        raise Unauthorized("missing webhook-id, webhook-timestamp or webhook-signature header")
    if not (msg_id.isascii() and stamp.isascii() and signatures.isascii()):
        raise Unauthorized("webhook-id, webhook-timestamp and webhook-signature must be ASCII")
    if not stamp.isdigit() or len(stamp) > 12:
        raise Unauthorized("webhook-timestamp must be UNIX seconds")
    sent = int(stamp)
    if abs(now.timestamp() - sent) > TOLERANCE_SECONDS:
        raise Unauthorized("webhook-timestamp is more than 5 minutes away from now")
    expected = Webhook(secret).sign(msg_id, datetime.fromtimestamp(sent, UTC), body).split(",", 1)[1]
    for candidate in signatures.split():
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return
    raise Unauthorized("no signature matches")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number (write a number, or leave the field out)")


def _error(status: int, message: str, outcome: str, **extra: Any) -> JSONResponse:
    WEBHOOKS.labels(outcome).inc()
    # The sender has something to fix; the message names the check, never the payload's text.
    log.warning("evaluation refused (%d %s): %s", status, outcome, message)
    return JSONResponse({"error": message, **extra}, status_code=status)


async def read_limited(request: Request) -> bytes | None:
    """The body, or None when it is over 1 MiB (stops reading there)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def make_endpoint(services: Services) -> Any:
    writer = IntakeWriter(services)

    async def qa_webhook(request: Request) -> JSONResponse:
        raw = await read_limited(request)
        if raw is None:
            return _error(413, "body larger than 1 MiB", "too_large")
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError:
            return _error(400, "body is not UTF-8 text", "bad_body")
        try:
            verify_signature(services.settings.qa_webhook_secret, request.headers, body, services.clock.now())
        except Unauthorized as exc:
            return _error(401, f"signature rejected: {exc}", "unauthorized")
        try:
            data = json.loads(body, parse_constant=_no_constant)
        except RecursionError:
            return _error(400, "body is not JSON we accept: nested too deeply", "bad_json")
        except ValueError as exc:
            return _error(400, f"body is not JSON: {exc}", "bad_json")
        try:
            parsed = parse_evaluation(data)
        except PayloadErrors as exc:
            return _error(422, "the evaluation does not match evaluation v1", "invalid", errors=exc.errors)
        try:
            result = await asyncio.wrap_future(writer.submit(parsed))
        except SQLAlchemyError:
            log.exception("evaluation from %s could not be stored", parsed.source)
            return _error(
                500, "the score could not be stored and was not accepted; send it again", "store_failed"
            )
        except PayloadErrors as exc:  # refused by the domain (e.g. a landing time in the future)
            return _error(422, "the evaluation does not match evaluation v1", "invalid", errors=exc.errors)
        counted = result.created or result.status in ("revised", "stale")
        WEBHOOKS.labels(result.status if counted else "repeat").inc()
        with logcontext.bound(case_id=result.case_id):
            log.info("evaluation %s: %s", result.evaluation_id, result.status)
        return JSONResponse(
            {"evaluation_id": result.evaluation_id, "case_id": result.case_id, "status": result.status},
            status_code=202 if result.created else 200,
        )

    return qa_webhook
