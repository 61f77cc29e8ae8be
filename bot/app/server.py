"""Running the web app in a thread (tests, demo) or in the foreground (serve)."""

from __future__ import annotations

import gc
import signal
import socket
import threading
import time
from types import FrameType

import uvicorn
from starlette.applications import Starlette


def exit_cleanly_on_sigterm() -> None:
    """SIGTERM (systemd, a container stop, a rolling restart) ends `serve` with exit code 0 after the
    web server drained and the sweeps stopped: uvicorn re-raises the signal once it has shut down, and
    this turns it into SystemExit so that the caller's `finally` blocks still run."""

    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)


# Collect the young generation after this many new container objects, not CPython's 700. At 700 the
# collector ran about twice for each batch of scores the intake stored, and every tenth time walked the
# middle generation too: 1,420 young collections (0.23 s) in one 15 s ingest benchmark. At 10,000: 13
# (0.05 s), each under 5 ms.
YOUNG_COLLECTION_THRESHOLD = 10_000


def tune_collector_for_serving() -> None:
    """For a long-running process, once startup is done: leave what startup built (SQLAlchemy's
    mappers and statements, Bolt's listeners, the calendars) out of the cycle collector's walks from
    now on, since each full collection would walk all of it (about 160,000 objects, 80 ms here) in the
    middle of whatever request is running; and collect the young generation less often."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, middle, old)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class BackgroundServer:
    """uvicorn serving an ASGI app on a thread; `url` once started."""

    def __init__(self, app: Starlette, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host, self.port = host, port or free_port(host)
        config = uvicorn.Config(
            app,
            host=self.host,
            port=self.port,
            log_level="warning",
            lifespan="off",
            access_log=False,
            log_config=None,  # uvicorn's lines go to the process's own logging (bot.app.logs)
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="web", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the web server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
