"""A long import split between processes: each reads the whole file, checks and stores its share
of the evaluations (`readers.owner`), and the stores take turns at the database, so that one process
checks evaluations or prepares rows while another writes.

The file is still judged as a whole before anything is stored: each helper reports what it found
wrong, and stores its share only once the importing process has seen every share and says so.
"""

from __future__ import annotations

import multiprocessing
import os
import traceback
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from bot.importing.backfill import ImportSummary, drop_repeats_within, import_records
from bot.importing.mapping import Mapping
from bot.importing.readers import CsvReader, Record, Share, read_jsonl
from storage.db import Database

SHARED_FROM = 4_000_000  # bytes: a file at least this long is shared between processes
MOST_SHARES = 4
GO, STOP = "go", "stop"
TURN = "import-turn"  # the lock (`Database.exclusive`) an import's processes take in turn to write

UnitOfWork = Callable[[], AbstractContextManager[Session]]


def shares_for(db: Database, size: int) -> int:
    """How many processes import a file of `size` bytes: one per usable core (at most MOST_SHARES)
    for a long file on a database other processes can open, else one."""
    in_memory = db.is_sqlite and make_url(db.url).database in (None, "", ":memory:")
    if size < SHARED_FROM or in_memory or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(MOST_SHARES, usable))


def read_share(
    path: Path, mapping: Mapping | None, share: Share, progress: Callable[[int], None] | None = None
) -> tuple[CsvReader | None, list[Record]]:
    """The records of this share of the file (CSV through `mapping`, else JSONL), checked."""
    if mapping is None:
        return None, list(read_jsonl(path, progress, share))
    reader = CsvReader(path, mapping)
    return reader, list(reader.read(progress, share))


@dataclass
class ShareRead:
    """What a helper found in its share: the records with problems, how many are valid, and how many
    repeated an earlier line exactly."""

    bad: list[Record]
    valid: int
    repeats: int


@dataclass
class ShareDone:
    """A helper's share stored: its summary, and the records left for the importing process to take
    through the webhook's intake in the file's order (`import_records`'s `defer`)."""

    summary: ImportSummary
    deferred: list[Record]


def _helper(
    pipe: Connection, stored: Any, share: Share, db_url: str, schema: str | None, path: Path,
    mapping: Mapping | None, now: datetime, actor: str, dry_run: bool,
) -> None:  # fmt: skip
    """A helper process: read and check its share, report, and on GO store it, taking turns."""
    try:
        _, records = read_share(path, mapping, share)
        records, repeats = drop_repeats_within(records, path.name)
        good = [r for r in records if not r.problems]
        bad = [r for r in records if r.problems]
        for r in bad:  # what the report needs: the lines, the first row and the problems
            r.payload = r.data = None
        pipe.send(ShareRead(bad, len(good), repeats))
        if pipe.recv() != GO:
            return
        db = Database(db_url, schema=schema)

        def count(n: int) -> None:
            with stored.get_lock():
                stored.value += n

        deferred: list[Record] = []
        summary = import_records(taking_turns(db), good, now, actor, dry_run=dry_run, progress=count,
                                 defer=deferred)  # fmt: skip
        db.dispose()
        pipe.send(ShareDone(summary, deferred))
    except BaseException:  # noqa: BLE001 - reported to the importing process, which raises it
        with suppress(OSError):
            pipe.send(traceback.format_exc())


def taking_turns(db: Database) -> UnitOfWork:
    """`db.unit_of_work`, entered only while holding the import's turn: a lock across processes,
    which the system lets go of when the process holding it dies."""

    @contextmanager
    def turned() -> Iterator[Session]:
        with db.exclusive(TURN), db.unit_of_work() as session:
            yield session

    return turned


class Helpers:
    """The processes that take shares 1 to n-1 of an import; the importing process takes share 0.
    Started before any other thread of the import (a progress bar's), since they are forked."""

    def __init__(self, shares: int, db: Database, path: Path, mapping: Mapping | None, now: datetime,
                 actor: str, *, dry_run: bool) -> None:  # fmt: skip
        self.mapping = mapping  # None for JSONL
        self._pipes: list[Connection] = []
        self._processes: list[Any] = []
        self.unit_of_work: UnitOfWork = db.unit_of_work
        if shares < 2:
            return
        context = multiprocessing.get_context("fork")
        self.stored = context.Value("q", 0)
        self.unit_of_work = taking_turns(db)
        job = (db.url, db.schema, path, mapping, now, actor, dry_run)
        for k in range(1, shares):
            ours, theirs = context.Pipe()
            process = context.Process(
                target=_helper,
                args=(theirs, self.stored, (k, shares), *job),
                daemon=True,
            )
            process.start()
            theirs.close()
            self._pipes.append(ours)
            self._processes.append(process)

    def __enter__(self) -> Helpers:
        return self

    def __exit__(self, failed: type[BaseException] | None, *_: object) -> None:
        """Once the import is over, or as soon as it fails: then nothing more of it is stored."""
        for pipe in self._pipes:
            pipe.close()
        for process in self._processes:
            if failed is None:
                process.join(timeout=5)
            if process.is_alive():
                process.terminate()
                process.join()

    def _receive(self, pipe: Connection) -> Any:
        try:
            answer = pipe.recv()
        except EOFError:
            raise RuntimeError("an import process ended without a word") from None
        if isinstance(answer, str):
            raise RuntimeError(f"an import process failed:\n{answer}")
        return answer

    def stored_so_far(self) -> int:
        """How many evaluations the helpers have stored (or checked, in a dry run) so far."""
        return int(self.stored.value) if self._pipes else 0

    def reads(self) -> list[ShareRead]:
        return [self._receive(pipe) for pipe in self._pipes]

    def decide(self, *, go: bool) -> None:
        for pipe in self._pipes:
            pipe.send(GO if go else STOP)

    def dones(self, waiting: Callable[[int], None]) -> list[ShareDone]:
        """What each helper did once it has stored its share; `waiting(stored so far)` meanwhile."""
        out = []
        for pipe in self._pipes:
            while not pipe.poll(0.1):
                waiting(self.stored.value)
            out.append(self._receive(pipe))
        if self._pipes:
            waiting(self.stored.value)
        return out
