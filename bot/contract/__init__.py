"""The published contract of the QA webhook: an OpenAPI 3.1 document with evaluation v1's JSON Schema."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any


@cache
def openapi_text() -> str:
    return resources.files("bot.contract").joinpath("openapi.json").read_text(encoding="utf-8")


def openapi_document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(openapi_text())
    return document


def evaluation_examples() -> dict[str, dict[str, Any]]:
    """The request examples of POST /webhooks/qa, by name."""
    body = openapi_document()["paths"]["/webhooks/qa"]["post"]["requestBody"]["content"]["application/json"]
    return {name: example["value"] for name, example in body["examples"].items()}
