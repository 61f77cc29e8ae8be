"""Every Web API method the code calls is covered by a bot scope in manifest.yml."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

from slack_sdk import WebClient

from bot.standin.scopes import HISTORY_SCOPES, LIST_SCOPES, METHOD_SCOPES, manifest_scopes

ROOT = Path(__file__).resolve().parents[1]
API_CALL = re.compile(r"api_call\(\s*\"([a-zA-Z.]+)\"")


def slack_methods(client_method: str) -> set[str]:
    """The Web API methods a WebClient method calls (files_upload_v2 calls two others)."""
    source = inspect.getsource(getattr(WebClient, client_method))
    found = set(API_CALL.findall(source))
    for inner in re.findall(r"self\.([a-z]+_[A-Za-z_]+)\(", source):
        if inner != client_method and callable(getattr(WebClient, inner, None)):
            found |= set(API_CALL.findall(inspect.getsource(getattr(WebClient, inner))))
    return found


def called_client_methods() -> set[str]:
    found: set[str] = set()
    for package in ("bot", "handlers", "scheduler"):
        for path in (ROOT / package).rglob("*.py"):
            if "standin" in path.parts:
                continue  # the stand-in is Slack, not a caller
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                    name = node.func.attr
                    is_method = callable(getattr(WebClient, name, None)) and name != "api_call"
                    if is_method and not name.startswith("_"):
                        found.add(name)
    return found


def test_each_method_called_has_its_scope_in_the_manifest() -> None:
    granted = manifest_scopes()
    called = called_client_methods()
    assert {"chat_postMessage", "views_open", "conversations_history", "conversations_list"} <= called
    methods = set().union(*(slack_methods(m) for m in called))
    assert "files.completeUploadExternal" in methods
    for method in sorted(methods):
        if method == "conversations.history":
            # DMs, and escalation channels that may be public or private.
            needed = [(scope,) for scope in HISTORY_SCOPES.values()]
        elif method == "conversations.list":
            needed = [(LIST_SCOPES["public_channel"],), (LIST_SCOPES["private_channel"],)]
        else:
            assert method in METHOD_SCOPES, f"{method}: add its scope to bot/standin/scopes.py"
            needed = [METHOD_SCOPES[method]] if METHOD_SCOPES[method] else []
        for any_of in needed:
            assert set(any_of) & granted, (
                f"{method} needs one of {any_of}; manifest.yml grants {sorted(granted)}"
            )


def test_a_scope_removed_from_the_manifest_is_caught(tmp_path: Path) -> None:
    text = (ROOT / "manifest.yml").read_text().replace("      - groups:history\n", "")
    manifest = tmp_path / "manifest.yml"
    manifest.write_text(text)
    assert "groups:history" not in manifest_scopes(manifest)
    assert "groups:history" in manifest_scopes()
