"""Reading files into evaluation v1 records, each checked by `parse_evaluation` like a webhook body.

Every problem names the file, the line and the column (the CSV header name, or for JSONL
the character position of a syntax error and the field path of a contract error).
"""

from __future__ import annotations

import csv
import io
import json
import math
import operator
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from bot.evaluation_input import EvaluationInput, PayloadErrors, parse_evaluation
from bot.importing.mapping import (
    BOOLEANS,
    DELIMITERS,
    EVALUATION_FIELDS,
    INTEGERS,
    ITEM_FIELDS,
    NUMBERS,
    Mapping,
)

TRUE = {"true", "yes", "y", "1"}
FALSE = {"false", "no", "n", "0"}
Progress = Callable[[int], None]  # bytes read so far
Share = tuple[int, int]  # (k, n): this reader keeps the evaluations `owner` gives to k of n readers
WHOLE: Share = (0, 1)


class UnreadableFile(Exception):
    """A problem with the file as a whole (it is empty, it is not in its format, its header lacks a
    column the mapping names): none of its evaluations can be read."""


@dataclass(slots=True)
class Record:
    """One evaluation from the file: its lines, its first row as read (a CSV row's cells, a JSONL
    line's text), and what is wrong. The other rows of a CSV evaluation are not kept: `CsvReader.rows_at`
    reads them again for the few that are rejected."""

    line: int
    lines: list[int]
    first_row: Any
    payload: dict[str, Any] | None = None
    data: EvaluationInput | None = None
    problems: list[str] = field(default_factory=list)


def owner(key: str, n: int) -> int:
    """Which of n readers keeps the evaluation with this key: every line of one evaluation, and every
    version of it in the file, goes to the same reader, in every process."""
    return zlib.crc32(key.encode("utf-8", "surrogatepass")) % n


def _jsonl_key(payload: Any) -> str | None:
    """The (source, id) a JSONL line's evaluation is kept under, as text; None without an id."""
    if type(payload) is not dict or type(payload.get("id")) is not str:
        return None
    return f"{payload.get('source') or 'webhook'}\0{payload['id']}"


def _counting(fh: TextIO, progress: Progress | None) -> Iterator[str]:
    done = 0
    for n, line in enumerate(fh):
        done += len(line)
        if progress is not None and n % 2000 == 0:
            progress(done)
        yield line
    if progress is not None:
        progress(done)


def _check(record: Record, where: Callable[[str], str] | str) -> None:
    """Check the payload against evaluation v1; `where` prefixes each problem (given its path)."""
    if record.problems:
        return
    if isinstance(where, str):
        prefix = where

        def where(_path: str) -> str:
            return prefix

    try:
        record.data = parse_evaluation(record.payload)
    except PayloadErrors as exc:
        record.problems += [
            f"{where(e['path'])}{e['path'] or 'the evaluation'} {e['message']}" for e in exc.errors
        ]


# -- JSONL -------------------------------------------------------------------------------------


def read_jsonl(path: Path, progress: Progress | None = None, share: Share = WHOLE) -> Iterator[Record]:
    name = path.name
    mine, readers = share
    first_problem: str | None = None
    any_json = False
    with path.open(encoding="utf-8-sig", newline="") as fh:
        for n, text in enumerate(_counting(fh, progress), start=1):
            if not text.strip():
                continue
            record = Record(line=n, lines=[n], first_row=text.rstrip("\r\n"))
            try:
                record.payload = json.loads(record.first_row)
            except json.JSONDecodeError as exc:
                first_problem = first_problem or f"line {n}, column {exc.colno}: {exc.msg}"
                if readers > 1 and n % readers != mine:
                    continue
                record.problems.append(f"{name}:{n}: column {exc.colno}: not JSON ({exc.msg})")
            else:
                any_json = True
                if readers > 1:
                    key = _jsonl_key(record.payload)
                    if (n if key is None else owner(key, readers)) % readers != mine:
                        continue
                _check(record, f"{name}:{n}: ")
            yield record
    if not any_json:
        if first_problem is None:
            raise UnreadableFile(f"{name} is empty")
        raise UnreadableFile(f"{name} is not JSON Lines: no line of it is JSON ({first_problem})")


# -- CSV ---------------------------------------------------------------------------------------


def _number(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text


def _integer(text: str) -> Any:
    value = _number(text)
    return int(value) if isinstance(value, float) and math.isfinite(value) and value.is_integer() else value


def _boolean(text: str) -> Any:
    low = text.lower()
    return True if low in TRUE else False if low in FALSE else text


def _text(text: str) -> Any:
    return text


def converter(name: str) -> Callable[[str], Any]:
    """How a cell of field `name` becomes its typed value; a value that does not convert is kept
    as text, so that the contract check refuses it with its own message."""
    if name in NUMBERS:
        return _number
    if name in INTEGERS:
        return _integer
    if name in BOOLEANS:
        return _boolean
    return _text


def _converting(name: str) -> Callable[[str], Any] | None:
    """`converter(name)`, or None for a field whose text is taken as it is."""
    convert = converter(name)
    return None if convert is _text else convert


def _cell(name: str, text: str) -> Any:
    return converter(name)(text.strip())


def _quoted(text: str) -> str:
    """A column name in double quotes, a tab or a quote in it escaped."""
    return json.dumps(text, ensure_ascii=False)


def _split(dotted: str) -> tuple[str, str]:
    head, _, tail = dotted.partition(".")
    return head, tail


def _put(target: dict[str, Any], dotted: str, value: Any) -> None:
    head, tail = _split(dotted)
    if tail:
        target.setdefault(head, {})[tail] = value
    else:
        target[head] = value


class CsvReader:
    def __init__(self, path: Path, mapping: Mapping) -> None:
        self.path, self.mapping = path, mapping
        self.header: list[str] = []

    def _where(self, record: Record, item_lines: list[int]) -> Callable[[str], str]:
        """'file:line: column "X": ' for a contract error path such as items[2].score."""

        def where(path: str) -> str:
            line, name = record.line, path
            if path.startswith("items["):
                index = int(path[6 : path.index("]")])
                line = item_lines[index] if index < len(item_lines) else record.line
                name = "item" + path[path.index("]") + 1 :]
            column = self.mapping.column_of(name)
            if column is None and name in self.mapping.constants:
                column = f"{name} under constants in the mapping"
            return f"{self.path.name}:{line}: " + (f'column "{column}": ' if column else "")

        return where

    def read(self, progress: Progress | None = None, share: Share = WHOLE) -> Iterator[Record]:
        m = self.mapping
        mine, readers = share
        theirs: set[str] = set()  # the ids of evaluations other readers keep
        name = self.path.name
        with self.path.open("rb") as binary, io.TextIOWrapper(binary, encoding="utf-8-sig", newline="") as fh:
            rows = csv.reader(fh, delimiter=m.delimiter)
            self.header = next(rows, [])
            if not "".join(self.header).strip():
                if not self.header and next(rows, None) is None:
                    raise UnreadableFile(f"{name} is empty")
                raise UnreadableFile(f"{name}:1: the header is empty; the first line must name the columns")
            index = {h.strip(): i for i, h in enumerate(self.header)}
            missing = [f"{_quoted(c)} ({f})" for f, c in m.columns.items() if c not in index]
            if missing:
                raise UnreadableFile(
                    f"{name}:1: the header has no column {', '.join(missing)}; "
                    f"it has: {', '.join(_quoted(h) for h in self.header)}{self._delimiter_hint()}"
                )
            ev_cols = [(f, index[c]) for f in EVALUATION_FIELDS if (c := m.columns.get(f)) is not None]
            # A text cell is taken as it is: no converter to call (None).
            ev_setters = [(*_split(f), i, _converting(f)) for f, i in ev_cols]
            item_cols = [
                (f[5:], index[c], _converting(f)) for f in ITEM_FIELDS if (c := m.columns.get(f)) is not None
            ]
            ev_values = operator.itemgetter(*(i for _, i in ev_cols))
            key_col = index[m.columns["item.key"]]
            id_col = index[m.columns["id"]]
            width = len(self.header)
            source = m.source
            ev_consts = {f: _cell(f, v) for f, v in m.constants.items() if not f.startswith("item.")}
            item_consts = {f[5:]: _cell(f, v) for f, v in m.constants.items() if f.startswith("item.")}
            # Per evaluation id: its record, the lines of its items, its first row's evaluation cells,
            # and its payload's list of items.
            groups: dict[str, tuple[Record, list[int], Any, list[dict[str, Any]]]] = {}
            for n, row in enumerate(rows, start=2):
                if progress is not None and not n & 4095:
                    progress(binary.tell())
                if len(row) < width:
                    if not "".join(row).strip():
                        continue
                    row = row + [""] * (width - len(row))
                ev_id = row[id_col].strip()
                if not ev_id and not "".join(row).strip():
                    continue
                found = groups.get(ev_id)
                if found is None:
                    if readers > 1 and (ev_id in theirs or owner(ev_id, readers) != mine):
                        theirs.add(ev_id)
                        continue
                    items: list[dict[str, Any]] = []
                    payload: dict[str, Any] = {"source": source, "items": items}
                    for f, v in ev_consts.items():
                        _put(payload, f, v)
                    for head, tail, i, convert in ev_setters:
                        cell = row[i].strip()
                        if cell:
                            value = cell if convert is None else convert(cell)
                            if tail:
                                payload.setdefault(head, {})[tail] = value
                            else:
                                payload[head] = value
                    record = Record(n, [n], row, payload)
                    item_lines: list[int] = []
                    groups[ev_id] = (record, item_lines, ev_values(row), items)
                else:
                    record, item_lines, firsts, items = found
                    record.lines.append(n)
                    if ev_values(row) != firsts:
                        self._differs(record, n, row, ev_cols, ev_id)
                if row[key_col].strip():
                    item = item_consts.copy()
                    for short, i, convert in item_cols:
                        cell = row[i].strip()
                        if cell:
                            item[short] = cell if convert is None else convert(cell)
                    items.append(item)
                    item_lines.append(n)
            for record, item_lines, _, _ in groups.values():
                _check(record, self._where(record, item_lines))
                yield record

    def rows_at(self, lines: set[int]) -> dict[int, list[str]]:
        """The rows at these data lines (numbered as `read` numbers them), read from the file again."""
        found: dict[int, list[str]] = {}
        width = len(self.header)
        with self.path.open(encoding="utf-8-sig", newline="") as fh:
            rows = csv.reader(fh, delimiter=self.mapping.delimiter)
            next(rows, None)
            for n, row in enumerate(rows, start=2):
                if n in lines:
                    found[n] = row + [""] * (width - len(row))
        return found

    def _delimiter_hint(self) -> str:
        """When the header is one column holding another delimiter than the mapping's, which one."""
        if len(self.header) != 1:
            return ""
        cell = self.header[0]
        found = [d for d in DELIMITERS if d != self.mapping.delimiter and d in cell]
        if not found:
            return ""
        other = _quoted(max(found, key=cell.count))
        return (
            f" (the header is one column holding {other}, and the mapping's delimiter is "
            f"{_quoted(self.mapping.delimiter)}: for a file delimited by {other}, put delimiter: {other} "
            "in the mapping)"
        )

    def _differs(
        self, record: Record, n: int, row: list[str], ev_cols: list[tuple[str, int]], ev_id: str
    ) -> None:
        first = record.first_row
        for f, i in ev_cols:
            if row[i] != first[i]:
                record.problems.append(
                    f'{self.path.name}:{n}: column "{self.mapping.columns[f]}": {row[i]!r} differs from '
                    f"{first[i]!r} on line {record.line}, for the same evaluation {ev_id!r}"
                )
