"""The baseline: a Starlette endpoint on uvicorn that reads the body and answers 202, nothing else.

    python -m bench.noop --port 8099
"""

from __future__ import annotations

import argparse

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def accept(request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse({"evaluation_id": 0, "case_id": 0, "status": "noop"}, status_code=202)


app = Starlette(routes=[Route("/webhooks/qa", accept, methods=["POST"])])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
