"""The console the commands write progress bars and problems to: stderr."""

from __future__ import annotations

from rich.console import Console


def stderr_console() -> Console:
    """A console on stderr. Written to a file or a pipe, each message stays on one line (rich would
    wrap it at 80 columns), so that it can be searched and read by other programs."""
    console = Console(stderr=True)
    console.soft_wrap = not console.is_terminal
    return console
