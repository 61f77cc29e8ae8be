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
from bot.importing.backfill import drop_repeats_within, import_records
from bot.importing.mapping import Mapping, MappingError, parse_mapping, template
from bot.importing.readers import CsvReader, Record, UnreadableFile, read_jsonl
from storage.db import Database

LONG_FILE = 1_000_000  # bytes: above this, a progress bar shows
SHOWN_PROBLEMS = 50


def rejects_path(path: Path) -> Path:
    return path.with_name(f"{path.stem}.rejects{path.suffix}")


def _write_rejects(path: Path, records: list[Record], header: list[str], delimiter: str) -> Path:
    out = rejects_path(path)
    with out.open("w", encoding="utf-8", newline="") as fh:
        if path.suffix.lower() in (".jsonl", ".ndjson"):
            for r in records:
                fh.write(json.dumps({"line": r.line, "errors": r.problems, "record": r.rows[0]}) + "\n")
        else:
            writer = csv.writer(fh, delimiter=delimiter)
            writer.writerow([*header, "coachloop_errors"])
            for r in records:
                for row in r.rows:
                    writer.writerow([*row, " | ".join(r.problems)])
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
) -> int:
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
    with ExitStack() as stack:
        # Reading builds many small dicts and lists that live until the end: the cycle collector
        # would walk them again and again for nothing (there are no cycles to find).
        stack.callback(gc.enable)
        gc.disable()
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
        reader = CsvReader(path, mapping) if mapping is not None and not is_jsonl else None
        source = reader.read if reader is not None else (lambda progress: read_jsonl(path, progress))
        try:
            records = list(source(lambda done: bar.update(reading, completed=done)))
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
        for r in bad[:SHOWN_PROBLEMS]:
            for problem in r.problems:
                out.print(problem, markup=False, highlight=False)
        if len(bad) > SHOWN_PROBLEMS:
            out.print(f"... and {len(bad) - SHOWN_PROBLEMS} more evaluation(s) with problems", markup=False)
        if bad and not skip_invalid and not dry_run:
            advice = (
                f"Fix them, or give --skip-invalid to import the {len(good):,} valid evaluation(s) and write "
                "the rejected rows beside the file."
                if good
                else "Fix them and import the file again."
            )
            print(f"{len(bad):,} evaluation(s) in {path.name} have problems; nothing was imported. {advice}")
            return 1
        storing = bar.add_task("checking" if dry_run else "importing", total=len(good))
        summary = import_records(
            db.unit_of_work,
            good,
            now,
            f"import:{path.name}",
            dry_run=dry_run,
            progress=lambda n: bar.advance(storing, n),
        )
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
            written = _write_rejects(
                path, bad, reader.header if reader else [], mapping.delimiter if mapping else ","
            )
            print(f"the rejected rows are in {written}")
    if dry_run:
        print("dry run: nothing was changed")
    return 1 if bad and not skip_invalid else 0


def print_template() -> int:
    sys.stdout.write(template())
    return 0
