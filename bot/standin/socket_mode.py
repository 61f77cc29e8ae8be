"""Socket Mode as Slack speaks it, on a local WebSocket endpoint.

From Slack's Socket Mode documentation: `apps.connections.open` (app-level token) returns a
single-use WebSocket URL; on connecting, Slack sends `hello`; it then sends envelopes
`{envelope_id, type: events_api | interactive | slash_commands, payload, accepts_response_payload,
retry_attempt, retry_reason}` and expects each acknowledged with `{envelope_id, payload?}`
(the payload carries what an HTTP response body would: `response_action`, for instance);
it asks the app to reconnect with `{type: disconnect, reason: ...}`, then closes the old socket.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

ACK_TIMEOUT = 5.0


class SocketModeEndpoint:
    """A WebSocket server that delivers envelopes to whichever app connection is current."""

    def __init__(self, host: str = "127.0.0.1", app_id: str = "A0COACH") -> None:
        self.app_id = app_id
        self.tickets: set[str] = set()
        self.connections: list[ServerConnection] = []  # open, oldest first
        self.opened = 0  # connections accepted so far
        self.acks: dict[str, dict[str, Any]] = {}
        self.unacked: list[str] = []  # envelope ids sent over a connection that closed before the ack
        self._cond = threading.Condition()
        self._server: Server = serve(self._session, host, 0)
        self._thread = threading.Thread(target=self._server.serve_forever, name="socket-mode", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.socket.getsockname()[1])

    def start(self) -> SocketModeEndpoint:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()

    def new_url(self) -> str:
        """A single-use URL, as apps.connections.open returns."""
        ticket = secrets.token_hex(8)
        with self._cond:
            self.tickets.add(ticket)
        return f"ws://127.0.0.1:{self.port}/link/?ticket={ticket}&app_id={self.app_id}"

    # -- one connection -------------------------------------------------------------------

    def _session(self, conn: ServerConnection) -> None:
        path = conn.request.path if conn.request is not None else ""
        ticket = path.partition("ticket=")[2].partition("&")[0]
        with self._cond:
            valid = ticket in self.tickets
            self.tickets.discard(ticket)
        if not valid:
            conn.close(code=1008, reason="invalid or used ticket")  # Slack: a URL serves one connection
            return
        conn.send(
            json.dumps(
                {
                    "type": "hello",
                    "num_connections": len(self.connections) + 1,
                    "debug_info": {"host": "standin-applink", "approximate_connection_time": 3600},
                    "connection_info": {"app_id": self.app_id},
                }
            )
        )
        with self._cond:
            self.connections.append(conn)
            self.opened += 1
            self._cond.notify_all()
        try:
            for raw in conn:
                ack = json.loads(raw)
                with self._cond:
                    self.acks[str(ack.get("envelope_id"))] = ack
                    self._cond.notify_all()
        except (ConnectionClosed, ValueError):
            pass
        finally:
            with self._cond:
                if conn in self.connections:
                    self.connections.remove(conn)
                self._cond.notify_all()

    def _current(self, timeout: float) -> ServerConnection:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self.connections:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no app is connected over Socket Mode")
                self._cond.wait(left)
            return self.connections[-1]

    # -- what tests and the user agent use -----------------------------------------------------

    def wait_connections(self, opened: int, timeout: float = 10.0) -> None:
        """Wait until `opened` connections were accepted in all and one is open."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.opened < opened or not self.connections:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{self.opened} Socket Mode connection(s) opened, waited for {opened}")
                self._cond.wait(left)

    def deliver(self, kind: str, payload: dict[str, Any], *, timeout: float = ACK_TIMEOUT) -> dict[str, Any]:
        """Send an envelope to the current connection; return the app's acknowledgement."""
        conn = self._current(timeout)
        envelope_id = secrets.token_hex(12)
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": kind != "events_api",
            "retry_attempt": 0,
            "retry_reason": "",
        }
        conn.send(json.dumps(envelope))
        deadline = time.monotonic() + timeout
        with self._cond:
            while envelope_id not in self.acks:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"the app did not acknowledge the {kind} envelope")
                self._cond.wait(left)
            return self.acks.pop(envelope_id)

    def ask_reconnect(self, reason: str = "refresh_requested") -> None:
        """Send `disconnect` as Slack does before it recycles a connection; close the old one once
        the app has opened a new connection."""
        old = self._current(ACK_TIMEOUT)
        before = self.opened
        old.send(json.dumps({"type": "disconnect", "reason": reason, "debug_info": {"host": "standin"}}))
        self.wait_connections(before + 1)
        self._close(old)

    def drop(self) -> None:
        """Close the current connection without warning (a network failure)."""
        self._close(self._current(ACK_TIMEOUT))

    def _close(self, conn: ServerConnection) -> None:
        conn.close()
        deadline = time.monotonic() + ACK_TIMEOUT
        with self._cond:
            while conn in self.connections and time.monotonic() < deadline:
                self._cond.wait(0.1)
