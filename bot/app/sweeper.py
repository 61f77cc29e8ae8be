"""The sweeps in a process of their own beside `serve`'s web server.

Delivering DMs and re-publishing Homes is CPU work; in the web process it took the interpreter away from
the score intake and the listeners. `serve` therefore starts `coachloop sweeper --stdin-wakes` as a child
and writes a byte to its stdin whenever a transaction queued work, so a new case's DM still goes out at
once. The child ends when its stdin closes: when `serve` stops, and also when `serve` is killed, so no
sweeper outlives it. Should the child die, `serve` starts another. `SWEEPS=in-process` keeps the sweeps
on a thread of `serve` instead: one process, less memory, slower under load.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from contextlib import suppress
from typing import TYPE_CHECKING

from bot.app.config import Settings
from bot.app.services import Services
from bot.clock import SystemClock

if TYPE_CHECKING:
    from connectors.zendesk_qa import ZendeskQAConnection

log = logging.getLogger("coachloop.sweeper")
RESTART_SECONDS = 1.0  # the pause before a sweeper that died is started again


class SweeperProcess:
    """`serve`'s side: starts the child, wakes it, starts it again if it dies, stops it."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="sweeper-watch", daemon=True)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

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
            self._proc = proc

    def wake(self) -> None:
        """Ask the sweeper to run now. Never blocks: a full pipe already holds a wake it has not read."""
        with self._guard:
            if self._proc is None or self._proc.stdin is None or self._proc.stdin.closed:
                return
            with suppress(BlockingIOError, BrokenPipeError):
                os.write(self._proc.stdin.fileno(), b".")

    def _watch(self) -> None:
        while True:
            proc = self._proc
            assert proc is not None
            code = proc.wait()
            if self._stopping.wait(RESTART_SECONDS):
                return
            log.error("the sweeper process ended (exit code %s); starting another", code)
            with self._guard:
                if proc.stdin is not None:
                    proc.stdin.close()
            while True:
                try:
                    self._spawn()
                    break
                except OSError:
                    log.exception("the sweeper process could not be started; trying again")
                    if self._stopping.wait(RESTART_SECONDS):
                        return

    def stop(self, timeout: float = 30.0) -> None:
        """Close the child's stdin and wait for it to finish the sweep in flight."""
        self._stopping.set()
        with self._guard:
            proc = self._proc
            if proc is None:
                return
            if proc.stdin is not None:
                proc.stdin.close()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log.warning("the sweeper did not stop within %.0f s; ending it", timeout)
            proc.kill()
            proc.wait()


def in_a_process_of_its_own(services: Services, zendesk_qa: ZendeskQAConnection | None) -> Callable[[], None]:
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
    from bot.app.zendesk_qa_settings import zendesk_qa_connection

    zendesk_qa = zendesk_qa_connection(settings.org_file)
    services = build_services(settings, SystemClock())
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
