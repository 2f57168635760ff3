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
    """A rich Console that wraps to the terminal on a TTY and never wraps otherwise (tables then pad
    to their widest row: the padding at the ends of lines is dropped)."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(stderr=stderr)
    return Console(file=_Unpadded(stream), width=10_000, soft_wrap=True)


class _Unpadded:
    """A text stream that writes lines without trailing spaces."""

    def __init__(self, stream) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        import re

        return self.stream.write(re.sub(r"[ \t]+(?=\n|$)", "", text))

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return False
