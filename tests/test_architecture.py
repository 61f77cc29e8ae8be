"""House rules that a reviewer would otherwise have to remember."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The core (domain) is bot/*.py. Beside it: bot/slack/ renders Block Kit, bot/app/ is the
# composition root (settings, services, app factory, CLI, demo), bot/standin/ stands in for Slack.
FORBIDDEN = (
    "slack_bolt",
    "slack_sdk",
    "starlette",
    "uvicorn",
    "urllib.request",
    "http",
    "handlers",
    "scheduler",
)


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_the_core_never_imports_slack_or_http_code() -> None:
    core = list((ROOT / "bot").glob("*.py"))
    assert len(core) > 10
    for path in core:
        bad = {
            m
            for m in imports(path)
            if m.split(".")[0] in FORBIDDEN
            or m in FORBIDDEN
            or m.startswith(("bot.app", "bot.standin", "bot.slack"))
        }
        assert not bad, f"{path.name} imports {sorted(bad)}"


def test_only_entry_points_import_the_composition_root() -> None:
    """Handlers and sweeps receive `Services` from bot.app.services; nothing else of bot.app."""
    for path in ROOT.glob("*/**/*.py"):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in ("tests", "bench", ".venv") or rel.parts[:2] == ("bot", "app"):
            continue
        bad = {m for m in imports(path) if m.startswith("bot.app") and m != "bot.app.services"}
        assert not bad, f"{rel} imports {sorted(bad)}"


def test_storage_knows_nothing_of_slack_or_the_core() -> None:
    for path in (ROOT / "storage").glob("*.py"):
        bad = {m for m in imports(path) if m.split(".")[0] in ("slack_bolt", "slack_sdk", "bot", "handlers")}
        assert not bad, f"{path.name} imports {sorted(bad)}"


def test_each_listener_module_registers_itself() -> None:
    for path in (ROOT / "handlers").glob("*.py"):
        source = path.read_text()
        if "@app." in source or "app.action(" in source:
            assert "def register(app: App, services: Services)" in source, path.name
