"""Small helpers for what the commands print: counts with the right plural, and console output that is
not hard-wrapped when it goes to a file or a pipe (a log keeps each message on one line)."""

from __future__ import annotations

import sys


def plural(n: int, word: str, many: str | None = None) -> str:
    """`word` for one, `many` (default: word + "s") otherwise: plural(1, "frame") -> "frame"."""
    return word if n == 1 else (many or word + "s")


def count(n: int, word: str, many: str | None = None) -> str:
    """"1 frame", "2 frames"."""
    return f"{n} {plural(n, word, many)}"


def console(stderr: bool = False):
    """A rich Console that wraps to the terminal on a TTY and never wraps otherwise."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(stderr=stderr)
    return Console(stderr=stderr, width=10_000, soft_wrap=True)
