"""App Home: published when someone opens it, and re-published (through the outbox) when their cases move."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from slack_bolt import App, BoltContext
from slack_sdk import WebClient

from bot.app.services import Services
from bot.slack.home import home_view

log = logging.getLogger("coachloop.handlers")


class OneAtATime:
    """Runs work for a key one at a time. Asked again while it runs, it then runs the latest work
    asked for, once (however often it was asked), so what is published is as fresh as the last
    request. A failure is raised to its caller only when nothing was asked for meanwhile.

    A leadership Home over a large organisation reads every team's open cases; five quick opens
    of it render twice, one after the other, not five times at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next: dict[str, Callable[[], None] | None] = {}  # key running -> work asked for since

    def run(self, key: str, work: Callable[[], None]) -> None:
        with self._lock:
            if key in self._next:
                self._next[key] = work
                return
            self._next[key] = None
        while True:
            failed: Exception | None = None
            try:
                work()
            except Exception as exc:
                failed = exc
            with self._lock:
                pending = self._next[key]
                if pending is None:
                    del self._next[key]
                else:
                    self._next[key] = None
            if pending is None:
                if failed is not None:
                    raise failed
                return
            if failed is not None:
                log.error("publishing %s failed; the one asked for since goes ahead: %s", key,
                          type(failed).__name__, exc_info=failed)  # fmt: skip
            work = pending


def register(app: App, services: Services) -> None:
    publishing = OneAtATime()

    @app.event("app_home_opened")
    def home_opened(event: dict[str, Any], client: WebClient, context: BoltContext) -> None:
        if event.get("tab") != "home":
            return
        person = context["person"]

        def publish() -> None:
            with services.db.read() as session:
                viewer = session.merge(person, load=False) if person is not None else None
                view = home_view(session, viewer, services.clock.now())
            client.views_publish(user_id=event["user"], view=view)

        publishing.run(event["user"], publish)
