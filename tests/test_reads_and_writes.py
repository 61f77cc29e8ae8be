"""Reads never wait for writers: on SQLite (WAL) a read transaction does not take the write lock, so a
listener lookup, Home and /coach answer while another process holds it."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, select

from bot.standin.client import wait_for
from storage.db import Database, ReadOnlyTransaction
from storage.models import Person
from tests.conftest import Stack
from tests.test_core_loop import land

PRIYA = "U0PRIYA"


@contextmanager
def write_lock_held(db: Database) -> Iterator[None]:
    """Another process's writing transaction: BEGIN IMMEDIATE on its own connection, held open."""
    path = db.engine.url.database
    assert path
    other = sqlite3.connect(path, isolation_level=None, timeout=0.1)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()


def finishes(fn: object, timeout: float = 5.0) -> bool:
    done = threading.Event()

    def run() -> None:
        fn()  # type: ignore[operator]
        done.set()

    threading.Thread(target=run, daemon=True).start()
    return done.wait(timeout)


def test_a_read_does_not_take_the_write_lock(sqlite_db: Database) -> None:
    with sqlite_db.unit_of_work() as session:
        session.add(Person(email="someone@example.com", name="Someone"))

    def read() -> None:
        with sqlite_db.read() as session:
            assert session.scalar(select(Person.name)) == "Someone"

    with write_lock_held(sqlite_db):
        assert finishes(read), "a read waited for the writer"


def test_a_write_still_waits_for_the_writer(sqlite_db: Database) -> None:
    """The control: a unit of work does take the write lock (so the test above could fail)."""
    released = threading.Event()

    def write() -> None:
        with sqlite_db.unit_of_work() as session:
            session.add(Person(email="other@example.com"))
        released.set()

    with write_lock_held(sqlite_db):
        assert not finishes(write, timeout=1.0)
    assert released.wait(10)


def test_a_read_refuses_to_write(sqlite_db: Database) -> None:
    with pytest.raises(ReadOnlyTransaction), sqlite_db.read() as session:
        session.add(Person(email="sneaky@example.com"))
        session.flush()


def test_home_and_coach_answer_while_a_writer_holds_the_lock(stack: Stack) -> None:
    land(stack)
    stack.sweep()
    with write_lock_held(stack.db):
        status, _ = stack.people.command(PRIYA, "/coach", "")
        assert status == 200
        wait_for(lambda: stack.standin.calls_to("response_url"), what="the /coach answer", timeout=5)
        stack.people.event({"type": "app_home_opened", "user": PRIYA, "channel": "D0", "tab": "home"})
        wait_for(
            lambda: [c for c in stack.standin.calls_to("views.publish") if c.args.get("user_id") == PRIYA],
            what="Priya's Home",
            timeout=5,
        )


def test_a_sweep_with_nothing_due_takes_no_write_lock(stack: Stack) -> None:
    """The sweeper is woken after every batch of scores: when nothing is due it finds that out in a
    read, and leaves the write lock to the scores."""
    land(stack)
    stack.sweep()
    with write_lock_held(stack.db):
        assert finishes(stack.sweeps.outbox.run_once, timeout=2.0), "an empty sweep waited for the writer"


def test_writers_of_one_process_take_their_turn_in_arrival_order(sqlite_db: Database) -> None:
    """A thread that writes in a loop (the score intake) does not get the lock back before a writer that
    asked for it while it was held (a click): each waits for the writers ahead of it, no more."""
    order: list[str] = []

    def click(name: str) -> None:
        with sqlite_db.unit_of_work() as session:
            session.get(Person, 1)
            order.append(name)

    with sqlite_db.unit_of_work():
        first = threading.Thread(target=click, args=("click 1",))
        first.start()
        wait_for(lambda: len(sqlite_db._writing._waiting) == 1, what="the first click queued")  # type: ignore[union-attr]
        second = threading.Thread(target=click, args=("click 2",))
        second.start()
        wait_for(lambda: len(sqlite_db._writing._waiting) == 2, what="the second click queued")  # type: ignore[union-attr]
    # The intake, writing again at once, queues behind both clicks.
    click("intake")
    first.join()
    second.join()
    assert order == ["click 1", "click 2", "intake"]


def test_writers_in_two_processes_take_turns_through_the_lock_file(sqlite_db: Database) -> None:
    """Two processes writing one SQLite file (here two `Database`s, each with its own lock file
    descriptor, as two processes have): the second waits for the first however long it holds the
    write lock, in the lock file, woken when the first commits. It never reaches SQLite's busy handler
    (here told to refuse at once), whose sleeps would keep it waiting after the lock is free."""
    path = sqlite_db.engine.url.database
    other = Database(f"sqlite:///{path}")

    @event.listens_for(other.engine, "connect")
    def _refuse_at_once(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute("PRAGMA busy_timeout=0")

    errors: list[BaseException] = []

    def write() -> None:
        try:
            with other.unit_of_work() as session:
                session.add(Person(email="second@example.com", name="Second"))
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            errors.append(exc)

    try:
        with sqlite_db.unit_of_work() as session:
            session.add(Person(email="first@example.com", name="First"))
            session.flush()
            second = threading.Thread(target=write)
            second.start()
            second.join(0.5)
            assert second.is_alive(), "the second writer did not wait for the first"
        second.join(10)
        assert not second.is_alive() and errors == []
        with sqlite_db.read() as session:
            assert set(session.scalars(select(Person.name))) >= {"First", "Second"}
    finally:
        other.dispose()
