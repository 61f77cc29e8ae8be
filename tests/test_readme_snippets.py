"""The README's signing snippets, run as they are printed, sign requests the webhook accepts."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Stack
from tests.payloads import evaluation

README = Path(__file__).resolve().parents[1] / "README.md"


def snippet(name: str) -> str:
    match = re.search(rf"<!-- snippet: {name} -->\n```\w+\n(.*?)\n```", README.read_text(), re.S)
    assert match, f"no snippet {name} in the README"
    return match.group(1)


def post(stack: Stack, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    req = urllib.request.Request(f"{stack.url}/webhooks/qa", data=body, headers=headers)
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, json.loads(resp.read())


def test_the_python_snippet_signs_an_accepted_request(stack: Stack) -> None:
    stack.clock.set(datetime.now(UTC))  # the snippet signs with the real time
    namespace: dict[str, Any] = {}
    exec(snippet("sign-python"), namespace)  # noqa: S102 - the README's own code
    body = json.dumps(evaluation(id="py-1")).encode()
    status, answer = post(stack, body, namespace["sign"](stack.services.settings.qa_webhook_secret, body))
    assert status == 202 and answer["status"] == "case_opened"


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_node_snippet_signs_an_accepted_request(stack: Stack, tmp_path: Path) -> None:
    stack.clock.set(datetime.now(UTC))
    body = json.dumps(evaluation(id="js-1"))
    script = tmp_path / "sign.js"
    script.write_text(
        snippet("sign-node")
        + "\nprocess.stdout.write(JSON.stringify(sign(process.argv[2], process.argv[3])));\n"
    )
    node = shutil.which("node")
    assert node is not None
    out = subprocess.run(
        [node, str(script), stack.services.settings.qa_webhook_secret, body],
        capture_output=True,
        check=True,
        text=True,
    )
    status, answer = post(stack, body.encode(), json.loads(out.stdout))
    assert status == 202 and answer["status"] == "case_opened"
