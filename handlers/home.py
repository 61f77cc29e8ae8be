"""App Home: published when someone opens it, and re-published (through the outbox) when their cases move."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from slack_bolt import App, BoltContext
from slack_sdk import WebClient

from bot.app.services import Services
from bot.slack.home import home_view


class OneAtATime:
    """Runs work for a key one at a time. Asked again while it runs, it runs once more when done
    (however often it was asked), so the last result is as fresh as the last request.

    A leadership Home over a large organisation reads every open case; five quick opens of it
    render twice, one after the other, not five times at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._again: dict[str, bool] = {}  # key -> asked again while running

    def run(self, key: str, work: Callable[[], None]) -> None:
        with self._lock:
            if key in self._again:
                self._again[key] = True
                return
            self._again[key] = False
        while True:
            try:
                work()
            except BaseException:
                with self._lock:
                    del self._again[key]
                raise
            with self._lock:
                if not self._again[key]:
                    del self._again[key]
                    return
                self._again[key] = False


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
