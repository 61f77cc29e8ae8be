"""The ASGI application: Slack events, the QA webhook and the ops endpoints."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from slack_bolt import App
from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from bot.app.services import Services
from bot.contract import openapi_text
from handlers import ingest


def create_web_app(services: Services, bolt_app: App) -> Starlette:
    async def slack_events(request: Request) -> Response:
        body = await request.body()
        # Bolt's App is synchronous: dispatch off the event loop so other requests keep flowing.
        bolt_response = await run_in_threadpool(bolt_app.dispatch, to_bolt_request(request, body))
        return to_starlette_response(bolt_response)

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(_: Request) -> Response:
        try:
            ok = await run_in_threadpool(services.db.ping)
        except Exception as exc:  # noqa: BLE001 - any database failure means not ready
            return JSONResponse({"ready": False, "database": type(exc).__name__}, status_code=503)
        return JSONResponse({"ready": ok}, status_code=200 if ok else 503)

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    async def openapi(_: Request) -> Response:
        return Response(openapi_text(), media_type="application/json")

    return Starlette(
        routes=[
            Route("/slack/events", slack_events, methods=["POST"]),
            Route("/webhooks/qa", ingest.make_endpoint(services), methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/openapi.json", openapi, methods=["GET"]),
        ]
    )
