"""The mapping file: which CSV column holds which field of evaluation v1."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml

EVALUATION_FIELDS = (
    "id",
    "source",
    "agent.email",
    "agent.name",
    "evaluator.email",
    "evaluator.name",
    "scorecard.id",
    "scorecard.name",
    "score",
    "max_score",
    "landed_at",
    "updated_at",
    "contact.id",
    "contact.channel",
    "contact.started_at",
    "contact.url",
)
ITEM_FIELDS = (
    "item.key",
    "item.name",
    "item.category",
    "item.score",
    "item.max_score",
    "item.weight",
    "item.critical",
    "item.comment",
    "item.at_seconds",
    "item.good_looks_like",
)
NUMBERS = {"score", "max_score", "item.score", "item.max_score", "item.weight"}
INTEGERS = {"item.at_seconds"}
BOOLEANS = {"item.critical"}
REQUIRED = ("id", "agent.email", "score", "max_score", "landed_at", "item.key", "item.name", "item.score",
            "item.max_score")  # fmt: skip
COLUMN_ONLY = ("id", "agent.email", "item.key")
DELIMITERS = (",", ";", "\t", "|")
DEFAULT_SOURCE = "csv-import"


class MappingError(Exception):
    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class Mapping:
    columns: dict[str, str]  # field -> CSV column
    constants: dict[str, Any] = field(default_factory=dict)
    source: str = DEFAULT_SOURCE
    delimiter: str = ","

    def column_of(self, field_name: str) -> str | None:
        return self.columns.get(field_name)


def template() -> str:
    """A commented example mapping (`coachloop import --template`)."""
    return resources.files("bot.importing").joinpath("template_map.yml").read_text(encoding="utf-8")


def parse_mapping(text: str, source: str = "map.yml") -> Mapping:
    """Check the whole mapping; raises MappingError with every problem, line-numbered."""
    errors: list[str] = []
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise MappingError([f"{source}:{mark.line + 1 if mark else 1}: not valid YAML"]) from None

    def fail(node: yaml.Node | None, message: str) -> None:
        errors.append(f"{source}:{node.start_mark.line + 1 if node is not None else 1}: {message}")

    if not isinstance(root, yaml.MappingNode):
        raise MappingError([f"{source}:1: the mapping must be a YAML mapping with a 'columns:' section"])
    top = {str(k.value): v for k, v in root.value}
    for key in sorted(set(top) - {"source", "delimiter", "columns", "constants"}):
        fail(top[key], f"{key}: is not a known section (source, delimiter, columns, constants)")
    known = set(EVALUATION_FIELDS) | set(ITEM_FIELDS)
    columns: dict[str, str] = {}
    constants: dict[str, Any] = {}
    for section, target in (("columns", columns), ("constants", constants)):
        node = top.get(section)
        if node is None:
            continue
        if not isinstance(node, yaml.MappingNode):
            fail(node, f"{section}: must be a mapping of field: value")
            continue
        for k, v in node.value:
            name = str(k.value)
            if name not in known:
                fail(k, f"{section}.{name}: is not a field of evaluation v1 ({', '.join(sorted(known))})")
            elif not isinstance(v, yaml.ScalarNode) or v.value == "":
                fail(v, f"{section}.{name}: needs a single value")
            else:
                target[name] = str(v.value)
    for name in sorted(set(columns) & set(constants)):
        errors.append(f"{source}: {name} is both a column and a constant; keep one")
    for name in COLUMN_ONLY:
        if name not in columns:
            fail(top.get("columns") or root, f"columns.{name}: is required (the column that holds it)")
    for name in REQUIRED:
        if name not in columns and name not in constants and name not in COLUMN_ONLY:
            fail(top.get("columns") or root, f"columns.{name}: is required (or give it under constants)")
    delimiter = ","
    if "delimiter" in top:
        raw = str(getattr(top["delimiter"], "value", ""))
        delimiter = "\t" if raw in ("\\t", "tab") else raw
        if delimiter not in DELIMITERS:
            fail(top["delimiter"], 'delimiter: must be ",", ";", "\\t" or "|"')
    source_name = str(getattr(top.get("source"), "value", "") or DEFAULT_SOURCE)
    if errors:
        raise MappingError(errors)
    return Mapping(columns=columns, constants=constants, source=source_name, delimiter=delimiter)
