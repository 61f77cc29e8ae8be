"""House rules that a reviewer would otherwise have to remember."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The core: rules, calendar, leverage, evidence, messages and modals. The app factory, the CLI,
# the demo, the runtime and the Slack stand-in live in bot/ too but are not core.
NOT_CORE = {"app.py", "cli.py", "demo.py", "runtime.py"}
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
    core = [p for p in (ROOT / "bot").glob("*.py") if p.name not in NOT_CORE]
    assert len(core) > 10
    for path in core:
        bad = {m for m in imports(path) if m.split(".")[0] in FORBIDDEN or m in FORBIDDEN}
        assert not bad, f"{path.name} imports {sorted(bad)}"


def test_storage_knows_nothing_of_slack_or_the_core() -> None:
    for path in (ROOT / "storage").glob("*.py"):
        bad = {m for m in imports(path) if m.split(".")[0] in ("slack_bolt", "slack_sdk", "bot", "handlers")}
        assert not bad, f"{path.name} imports {sorted(bad)}"


def test_each_listener_module_registers_itself() -> None:
    for path in (ROOT / "handlers").glob("*.py"):
        source = path.read_text()
        if "@app." in source or "app.action(" in source:
            assert "def register(app: App, services: Services)" in source, path.name
