"""Errors in OpenAI's shape: {"error": {"message", "type", "param", "code"}} with a fitting HTTP status.

Every failure the API can meet ends here, including request validation and unexpected exceptions, so a
client always gets one readable line (and never a traceback).
"""

from __future__ import annotations

import errno
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from kino.errors import InputError, KinoError, PolicyError, one_line

log = logging.getLogger("kino.serve")


class ApiError(Exception):
    """An error response: status, message, type, param, code (and extra fields, headers)."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None, **extra) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers, self.extra = headers or {}, extra

    def response(self) -> JSONResponse:
        body = {"message": self.message, "type": self.type, "param": self.param, "code": self.code, **self.extra}
        return JSONResponse({"error": body}, status_code=self.status, headers=self.headers)


def bad(message: str, param: str | None = None, code: str = "invalid_value") -> ApiError:
    return ApiError(400, message, param=param, code=code)


def from_kino(e: KinoError, param: str | None = None) -> ApiError:
    """A KinoError met while checking a request (before queuing) as a 400."""
    if isinstance(e, PolicyError):
        return ApiError(400, f"{one_line(e)} (category: {e.category})", param=param or "prompt",
                        code="moderation_blocked", category=e.category)
    if isinstance(e, InputError):
        return bad(one_line(e), param)
    return ApiError(500, one_line(e), type="server_error", code="server_error")


def not_found(jid: str) -> ApiError:
    return ApiError(404, f"no video with id {jid!r}", param="video_id", code="video_not_found")


STATUS_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 403: "invalid_request_error",
                404: "invalid_request_error", 405: "invalid_request_error", 413: "invalid_request_error",
                429: "rate_limit_error"}


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into OpenAI's shape."""

    @app.exception_handler(ApiError)
    async def _api(_: Request, e: ApiError):
        return e.response()

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, e: RequestValidationError):
        first = (e.errors() or [{}])[0]
        loc = [str(p) for p in first.get("loc", ()) if p not in ("query", "path", "body", "header")]
        param = ".".join(loc) or None
        return bad(f"{param or 'request'}: {first.get('msg', 'invalid value')}", param).response()

    @app.exception_handler(HTTPException)
    async def _http(_: Request, e: HTTPException):
        return ApiError(e.status_code, str(e.detail), type=STATUS_TYPES.get(e.status_code, "invalid_request_error"),
                        code=None, headers=dict(e.headers or {})).response()

    @app.exception_handler(Exception)
    async def _internal(_: Request, e: Exception):
        return unexpected(e).response()


def unexpected(e: BaseException) -> ApiError:
    """An exception no check foresaw, as a 5xx in OpenAI's shape: a full disk (507) and an unavailable job store
    (503, with Retry-After) say so; anything else is logged and answered as an internal error (500)."""
    import sqlite3

    if isinstance(e, OSError) and e.errno == errno.ENOSPC or (
            isinstance(e, sqlite3.OperationalError) and "disk" in str(e) and "full" in str(e)):
        log.error("disk full: %s", e)
        return ApiError(507, "the server's disk is full; nothing was stored, try again later", type="server_error",
                        code="insufficient_storage")
    if isinstance(e, sqlite3.OperationalError):
        log.error("job store unavailable: %s", e)
        return ApiError(503, "the job store is busy or unavailable; nothing was stored, retry shortly",
                        type="server_error", code="service_unavailable", headers={"Retry-After": "2"})
    log.error("unexpected error", exc_info=e)
    return ApiError(500, f"internal error: {type(e).__name__}", type="server_error", code="server_error")
