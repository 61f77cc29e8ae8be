"""Evaluation payloads for tests."""

from __future__ import annotations

import copy
from typing import Any

BASE: dict[str, Any] = {
    "id": "ev-20261123-0042",
    "source": "zendesk-qa",
    "agent": {"email": "ana.ruiz@example.com", "name": "Ana Ruiz"},
    "evaluator": {"email": "lee.park@example.com", "name": "Lee Park"},
    "scorecard": {"id": "billing-v3", "name": "Billing calls v3"},
    "score": 68.0,
    "max_score": 100.0,
    "landed_at": "2026-11-23T14:02:00Z",
    "contact": {
        "id": "C-88912",
        "channel": "call",
        "started_at": "2026-11-22T11:23:00Z",
        "url": "https://qa.example.com/c/88912",
    },
    "items": [
        {
            "key": "acknowledge",
            "name": "Acknowledges the customer's concern",
            "category": "Empathy",
            "score": 0,
            "max_score": 5,
            "weight": 2,
            "critical": False,
            "at_seconds": 252,
            "comment": "Customer asked why the refund was late; agent read the policy without acknowledging "
            "the frustration.",
            "good_looks_like": "Name the frustration before explaining the policy.",
        },
        {
            "key": "verify-identity",
            "name": "Verifies identity before account changes",
            "category": "Compliance",
            "score": 5,
            "max_score": 5,
            "weight": 3,
            "critical": True,
        },
    ],
}


def evaluation(**changes: Any) -> dict[str, Any]:
    payload = copy.deepcopy(BASE)
    payload.update(changes)
    return payload


def perfect(
    ev_id: str, email: str = "ana.ruiz@example.com", landed_at: str = "2026-11-23T14:02:00Z"
) -> dict[str, Any]:
    payload = evaluation(id=ev_id, landed_at=landed_at, score=100.0)
    payload["agent"] = {"email": email}
    payload["items"] = [
        {"key": "acknowledge", "name": "Acknowledges the customer's concern", "score": 5, "max_score": 5},
        {
            "key": "verify-identity",
            "name": "Verifies identity before account changes",
            "score": 5,
            "max_score": 5,
            "critical": True,
        },
    ]
    return payload
