"""The sweeps in a process of their own beside `serve`'s web server.

Delivering DMs and re-publishing Homes is CPU work; in the web process it took the interpreter away from
the score intake and the listeners. `serve` therefore starts `coachloop sweeper --stdin-wakes` as a child
and writes a byte to its stdin whenever a transaction queued work, so a new case's DM still goes out at
once. The child ends when its stdin closes: when `serve` stops, and also when `serve` is killed, so no
sweeper outlives it. Once running it ignores SIGTERM and SIGINT, which reach it too when a whole process
group is stopped, so that it outlasts the web server's drain. Should the child crash, `serve` starts
another, waiting longer after each quick failure; one stopped by a signal is left stopped.
`SWEEPS=in-process` keeps the sweeps on a thread of `serve` instead: one process, less memory, slower
under load.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from typing import TYPE_CHECKING

from bot.app.config import Settings
from bot.app.services import Services
from bot.clock import SystemClock
from bot.metrics import SWEEPER_RESTARTS

if TYPE_CHECKING:
    from connectors.zendesk_qa import ZendeskQAConnection

log = logging.getLogger("coachloop.sweeper")
RESTART_SECONDS = 1.0  # the first pause before a sweeper that died is started again; doubled after
RESTART_MAX_SECONDS = 60.0  # each one that died within a minute of starting, up to this
STOP_SECONDS = 30.0  # how long serve waits for its sweeper to finish the sweep in flight
# Exit codes of a sweeper that was asked to stop (its stdin closed; SIGTERM or SIGINT before it began to
# ignore them): it is not started again. Any other end (a crash, SIGKILL by the OOM killer) is.
STOPPED = (0, -signal.SIGTERM, -signal.SIGINT)


class SweeperProcess:
    """`serve`'s side: starts the child, wakes it, starts it again if it dies, stops it."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="sweeper-watch", daemon=True)

    def start(self) -> SweeperProcess:
        self._spawn()
        self._watcher.start()
        return self

    def _spawn(self) -> None:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot.app.cli", "sweeper", "--stdin-wakes"], stdin=subprocess.PIPE
        )
        assert proc.stdin is not None
        os.set_blocking(proc.stdin.fileno(), False)
        with self._guard:
            if not self._stopping.is_set():
                self._proc = proc
                return
        proc.stdin.close()  # stop() came while it started: it ends at once, as the others did
        proc.wait()

    def wake(self) -> None:
        """Ask the sweeper to run now. Never blocks: a full pipe already holds a wake it has not read."""
        with self._guard:
            if self._proc is None or self._proc.stdin is None or self._proc.stdin.closed:
                return
            with suppress(BlockingIOError, BrokenPipeError):
                os.write(self._proc.stdin.fileno(), b".")

    def _watch(self) -> None:
        pause = RESTART_SECONDS
        while True:
            proc = self._proc
            assert proc is not None
            started = time.monotonic()
            code = proc.wait()
            pause = RESTART_SECONDS if time.monotonic() - started > RESTART_MAX_SECONDS else pause
            with self._guard:
                if proc.stdin is not None:
                    proc.stdin.close()
            if code in STOPPED:  # stopped on purpose, e.g. by the signal that is stopping serve too
                log.info("the sweeper process was stopped (exit code %s)", code)
                return
            log.error("the sweeper process ended (exit code %s); starting another in %.0f s", code, pause)
            if self._stopping.wait(pause):
                return
            SWEEPER_RESTARTS.inc()
            try:
                self._spawn()
            except OSError:
                log.exception("the sweeper process could not be started")
                self._proc = proc  # its wait() returns at once: the next turn tries again, after a pause
            pause = min(pause * 2, RESTART_MAX_SECONDS)

    def stop(self, timeout: float = STOP_SECONDS) -> None:
        """Close the child's stdin and wait for it to finish the sweep in flight."""
        with self._guard:
            self._stopping.set()
            proc = self._proc
            if proc is not None and proc.stdin is not None:
                proc.stdin.close()
        if proc is not None:
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log.warning("the sweeper did not stop within %.0f s; ending it", timeout)
                proc.kill()
                proc.wait()
        self._watcher.join(timeout=5)


def in_a_process_of_its_own(services: Services) -> Callable[[], None]:
    """`serve`'s sweeps in a child process (SWEEPS=process), which reads the Zendesk QA settings itself;
    returns what stops them."""
    sweeper = SweeperProcess().start()
    services.wake_sweeps = sweeper.wake
    return sweeper.stop


def in_process(services: Services, zendesk_qa: ZendeskQAConnection | None) -> Callable[[], None]:
    """`serve`'s sweeps on a thread of its own process (SWEEPS=in-process); returns what stops them."""
    from scheduler.runner import start_scheduler
    from scheduler.zendesk_qa_poll import start_poller

    scheduler = start_scheduler(services, interval=services.settings.sweep_interval)
    if zendesk_qa is not None:
        start_poller(scheduler, services, zendesk_qa)
    return lambda: scheduler.shutdown(wait=True)


def run_sweeper(settings: Settings, *, stdin_wakes: bool) -> int:
    """The child's side: the sweeps (and any Zendesk QA polling) until stdin closes, or until SIGTERM
    when it runs on its own (`stdin_wakes=False`)."""
    from bot.app.factory import build_services
    from bot.app.server import tune_collector_for_serving
    from bot.app.zendesk_qa_settings import zendesk_qa_connection

    if stdin_wakes:  # serve's child: it ends when serve closes its stdin, not on a signal meant for serve
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    zendesk_qa = zendesk_qa_connection(settings.org_file)
    services = build_services(settings, SystemClock())
    tune_collector_for_serving()
    stop = in_process(services, zendesk_qa)
    try:
        if stdin_wakes:
            while os.read(sys.stdin.fileno(), 4096):
                services.wake()
        else:
            threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop()  # let a sweep in flight record what it sent
        services.db.dispose()
    return 0
