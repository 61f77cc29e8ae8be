"""Domain errors; the Slack glue turns each into a modal error or an ephemeral message."""

from __future__ import annotations


class CoachingError(Exception):
    """A request the domain refuses; the message is safe to show to the person acting."""


class NotAllowed(CoachingError):
    pass


class NotFound(CoachingError):
    pass


class CaseMovedOn(CoachingError):
    pass


class InvalidInput(CoachingError):
    """Field errors keyed by the modal's block ids."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors
