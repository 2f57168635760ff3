"""Errors meant for people: each carries one line of text and a distinct exit code.

The command line prints `kino: error: <message>` and exits with `exit_code`, no traceback.
Library callers catch `KinoError` (or a subclass) like any exception.
"""

from __future__ import annotations


class KinoError(Exception):
    """Base class: a problem the user can fix, described in one line."""

    exit_code = 1


class InputError(KinoError):
    """Bad input: an argument, a file or a setting that is not valid (says what is)."""

    exit_code = 2


class MediaError(InputError):
    """A media file that cannot be read: corrupt, truncated, empty or not a video/image."""

    exit_code = 3


class ModelError(KinoError):
    """A missing, incomplete or incompatible model directory or checkpoint."""

    exit_code = 4


class PolicyError(KinoError):
    """A request refused by the safety policy (category and reason in the message)."""

    exit_code = 5

    def __init__(self, message: str, category: str = "policy") -> None:
        super().__init__(message)
        self.category = category


class DependencyError(KinoError):
    """An optional library that this feature needs is not installed."""

    exit_code = 6


class ServiceError(KinoError):
    """An external service (a captioning or prompt-enhancing endpoint) failed for every item asked of it."""

    exit_code = 7


def one_line(exc: BaseException) -> str:
    """The first line of an exception's text, never empty."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
