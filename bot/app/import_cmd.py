"""`coachloop import FILE`: CSV (through a mapping) or JSONL into the same intake as the webhook."""

from __future__ import annotations

import csv
import gc
import json
import sys
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

from bot.app.config import ConfigError
from bot.app.console import stderr_console
from bot.app.import_shares import Helpers, read_share, shares_for
from bot.importing.backfill import drop_repeats_within, import_records
from bot.importing.mapping import Mapping, MappingError, parse_mapping, template
from bot.importing.readers import CsvReader, Record, UnreadableFile
from storage.db import Database

LONG_FILE = 1_000_000  # bytes: above this, a progress bar shows
SHOWN_PROBLEMS = 50


def rejects_path(path: Path) -> Path:
    return path.with_name(f"{path.stem}.rejects{path.suffix}")


def _write_rejects(path: Path, records: list[Record], reader: CsvReader | None, delimiter: str) -> Path:
    out = rejects_path(path)
    with out.open("w", encoding="utf-8", newline="") as fh:
        if reader is None:
            for r in records:
                fh.write(json.dumps({"line": r.line, "errors": r.problems, "record": r.first_row}) + "\n")
        else:
            rows = reader.rows_at({n for r in records for n in r.lines})
            writer = csv.writer(fh, delimiter=delimiter)
            writer.writerow([*reader.header, "coachloop_errors"])
            for r in records:
                for n in r.lines:
                    writer.writerow([*rows[n], " | ".join(r.problems)])
    return out


def run_import(
    db: Database,
    path: Path,
    mapping_file: Path | None,
    now: datetime,
    *,
    dry_run: bool = False,
    skip_invalid: bool = False,
    console: Console | None = None,
    workers: int | None = None,
) -> int:
    """Import `path`; `workers` processes share a long file (by default, `shares_for` says how many)."""
    out = console or stderr_console()
    if not path.is_file():
        raise ConfigError(f"{path} is not a file")
    mapping: Mapping | None = None
    if mapping_file is not None:
        try:
            mapping = parse_mapping(mapping_file.read_text(encoding="utf-8"), mapping_file.name)
        except OSError as exc:
            raise ConfigError(f"cannot read the mapping {mapping_file}: {exc.strerror}") from None
        except MappingError as exc:
            raise ConfigError(f"the mapping has problems; nothing was imported:\n{exc}") from None
    is_jsonl = path.suffix.lower() in (".jsonl", ".ndjson")
    if not is_jsonl and mapping is None:
        raise ConfigError(
            f"{path.name} is read as CSV, which needs a mapping: --map map.yml "
            "(coachloop import --template prints one to start from)"
        )
    size = path.stat().st_size
    shares = workers or shares_for(db, size)
    actor = f"import:{path.name}"
    with ExitStack() as stack:
        # Reading builds many small dicts and lists that live until the end: the cycle collector
        # would walk them again and again for nothing (there are no cycles to find).
        stack.callback(gc.enable)
        gc.disable()
        helpers = stack.enter_context(
            Helpers(shares, db, path, None if is_jsonl else mapping, now, actor, dry_run=dry_run)
        )
        bar = stack.enter_context(
            Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TaskProgressColumn(),
                TimeRemainingColumn(),
                console=out,
                transient=True,
                disable=size < LONG_FILE,
            )
        )
        reading = bar.add_task(f"reading {path.name}", total=size)
        try:
            reader, records = read_share(
                path, helpers.mapping, (0, shares), lambda done: bar.update(reading, completed=done)
            )
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"{path.name} is not UTF-8 text (byte {exc.start} of a chunk): save the export as UTF-8 "
                "and import it again; nothing was imported"
            ) from None
        except csv.Error as exc:
            raise ConfigError(f"{path.name} cannot be read as CSV ({exc}); nothing was imported") from None
        except UnreadableFile as exc:
            raise ConfigError(f"{exc}; nothing was imported") from None
        bar.update(reading, completed=size)
        records, repeats_in_file = drop_repeats_within(records, path.name)
        bad = [r for r in records if r.problems]
        good = [r for r in records if not r.problems]
        valid = len(good)
        for share in helpers.reads():
            bad += share.bad
            valid += share.valid
            repeats_in_file += share.repeats
        bad.sort(key=lambda r: r.line)
        for r in bad[:SHOWN_PROBLEMS]:
            for problem in r.problems:
                out.print(problem, markup=False, highlight=False)
        if len(bad) > SHOWN_PROBLEMS:
            out.print(f"... and {len(bad) - SHOWN_PROBLEMS} more evaluation(s) with problems", markup=False)
        if bad and not skip_invalid and not dry_run:
            helpers.decide(go=False)
            advice = (
                f"Fix them, or give --skip-invalid to import the {valid:,} valid evaluation(s) and write "
                "the rejected rows beside the file."
                if valid
                else "Fix them and import the file again."
            )
            print(f"{len(bad):,} evaluation(s) in {path.name} have problems; nothing was imported. {advice}")
            return 1
        helpers.decide(go=True)
        storing = bar.add_task("checking" if dry_run else "importing", total=valid)
        done = 0

        def stored(n: int) -> None:
            nonlocal done
            done += n
            bar.update(storing, completed=done + helpers.stored_so_far())

        deferred: list[Record] = []
        summary = import_records(
            helpers.unit_of_work,
            good,
            now,
            actor,
            dry_run=dry_run,
            progress=stored,
            defer=deferred if shares > 1 else None,
        )
        for theirs in helpers.dones(lambda n: bar.update(storing, completed=done + n)):
            summary.merge(theirs.summary)
            deferred += theirs.deferred
        if deferred:
            deferred.sort(key=lambda r: r.line)
            summary.merge(import_records(db.unit_of_work, deferred, now, actor, dry_run=dry_run))
        # Let go of what was read while the cycle collector is still off: switched back on, it would
        # first walk every one of those objects once more.
        del records, good
    summary.counts["repeat"] += repeats_in_file
    for line in summary.lines(dry_run=dry_run):
        print(line)
    if bad:
        print(f"{len(bad):>8,}  with problems{' (see above)' if dry_run else ''}")
        if dry_run and not skip_invalid:
            print("without --skip-invalid, the import itself imports nothing from a file with problems")
        if skip_invalid and not dry_run:
            written = _write_rejects(path, bad, reader, mapping.delimiter if mapping else ",")
            print(f"the rejected rows are in {written}")
    if dry_run:
        print("dry run: nothing was changed")
    return 1 if bad and not skip_invalid else 0


def print_template() -> int:
    sys.stdout.write(template())
    return 0
