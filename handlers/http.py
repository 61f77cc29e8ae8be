"""The ASGI application: Slack events, the QA webhook and the ops endpoints."""

from __future__ import annotations

import contextvars
import logging
import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.core import Metric
from slack_bolt import App
from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response
from slack_bolt.request.internals import parse_body
from slack_sdk.signature import SignatureVerifier
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.app.services import Services
from bot.contract import openapi_text
from bot.metrics import ACK_SECONDS, database_figures, exposition
from handlers import ingest
from storage import logcontext

log = logging.getLogger("coachloop.http")


class RequestIds:
    """Takes each request's X-Request-Id (a plain token) or makes one, binds it to everything the
    request does (log lines, queued messages), and returns it in the response's X-Request-Id."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), None)
        request_id = logcontext.accept_request_id(given)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        with logcontext.bound(request_id=request_id):
            await self.app(scope, receive, send_with_id)


def _slack_kind(body: bytes) -> str:
    if body.startswith(b"payload="):
        return "interactive"
    if body.startswith(b"{"):
        return "event"
    return "command"


NEEDS_LIST = {"block_actions": "actions", "interactive_message": "actions"}
NEEDS_OBJECT = {"view_submission": "view", "view_closed": "view"}


def malformed(body: str, content_type: str | None) -> str | None:
    """Why a signed Slack payload has a shape Bolt cannot route (None when it can)."""
    try:
        payload = parse_body(body, content_type)
    except (ValueError, RecursionError):
        return "the payload is not JSON"
    if not isinstance(payload, dict):
        return "the payload is not a JSON object"
    kind = payload.get("type")
    if kind in NEEDS_LIST:
        actions = payload.get("actions")
        if not isinstance(actions, list) or not actions or not all(isinstance(a, dict) for a in actions):
            return f"a {kind} payload needs a non-empty list of actions"
    if kind in NEEDS_OBJECT and not isinstance(payload.get("view"), dict):
        return f"a {kind} payload needs a view object"
    for name in ("user", "team", "channel", "container", "enterprise"):
        if payload.get(name) is not None and not isinstance(payload.get(name), dict | str):
            return f"{name} must be an object"
    return None


def create_web_app(services: Services, bolt_app: App) -> Starlette:
    verifier = SignatureVerifier(services.settings.slack_signing_secret)

    async def slack_events(request: Request) -> Response:
        started = time.perf_counter()
        raw = await ingest.read_limited(request)
        if raw is None:
            return PlainTextResponse("body larger than 1 MiB", status_code=413)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return PlainTextResponse("body is not UTF-8 text", status_code=400)
        try:
            signed = verifier.is_valid_request(text, dict(request.headers))
        except (ValueError, TypeError, OverflowError):  # e.g. a timestamp that is not a number
            signed = False
        if not signed:
            return PlainTextResponse("invalid Slack signature", status_code=401)
        problem = malformed(text, request.headers.get("content-type"))
        if problem is not None:
            return PlainTextResponse(problem, status_code=400)
        body = raw
        # Bolt's App is synchronous: dispatch off the event loop so other requests keep flowing.
        # (in a copy of this request's context, so ids set while dispatching stay with this request)
        bolt_response = await run_in_threadpool(
            contextvars.copy_context().run, bolt_app.dispatch, to_bolt_request(request, body)
        )
        ACK_SECONDS.labels(_slack_kind(body)).observe(time.perf_counter() - started)
        return to_starlette_response(bolt_response)

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(_: Request) -> Response:
        try:
            ok = await run_in_threadpool(services.db.ping)
        except Exception as exc:  # noqa: BLE001 - any database failure means not ready
            return JSONResponse({"ready": False, "database": type(exc).__name__}, status_code=503)
        return JSONResponse({"ready": ok}, status_code=200 if ok else 503)

    def figures() -> list[Metric]:
        with services.db.read() as session:
            return database_figures(session, services.clock.now())

    async def metrics(_: Request) -> Response:
        try:
            read = await run_in_threadpool(figures)
        except SQLAlchemyError as exc:  # the process's own figures are still worth serving
            log.warning("metrics: the database figures are unavailable (%s)", type(exc).__name__)
            read = []
        return Response(exposition(read), media_type=CONTENT_TYPE_LATEST)

    async def openapi(_: Request) -> Response:
        return Response(openapi_text(), media_type="application/json")

    middleware: list[Any] = [Middleware(RequestIds)]
    return Starlette(
        routes=[
            Route("/slack/events", slack_events, methods=["POST"]),
            Route("/webhooks/qa", ingest.make_endpoint(services), methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/openapi.json", openapi, methods=["GET"]),
        ],
        middleware=middleware,
    )
