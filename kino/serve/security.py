"""API keys, key guessing, the no-auth guard and request limits.

A request to /v1 carries `Authorization: Bearer KEY`; the key is compared in constant time with the
configured ones, and the jobs it makes belong to it (its owner id is a hash of the key, so the key
itself is never stored). A client address that sends more than `key_failures_per_minute` wrong keys
gets 429 until its minute has passed (guessing slowed from hundreds a second to a few a minute).

Only a server bound to a loopback address may run without keys (--no-auth), and then every request
belongs to "local". Any web page the local user opens can reach such a server, so `NoAuthGuard` admits
only requests that name a loopback Host (a DNS-rebinding page names its own), whose Origin, when sent,
is a loopback page, and, when they change state, that a cross-site form could not have sent: a JSON
body, an `X-Kino-CSRF` header or an Authorization header (each forces a CORS preflight, which this
server never grants). Bodies larger than max_request_bytes get a 413 before they are read to the end.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections import deque
from urllib.parse import urlsplit

from fastapi import Request

from kino.serve.errors import ApiError


def owner_id(key: str) -> str:
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:24]


def owner_of(request: Request) -> str:
    """FastAPI dependency: the owner of this request, or a 401 (429 while its address guesses) in OpenAI's
    shape."""
    svc = request.app.state.service
    config = svc.config
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    key = key.strip()
    address = request.client.host if request.client else "?"
    if key and not config.no_auth:
        svc.key_guard.check(address)
    if scheme.lower() == "bearer" and key:
        for k in config.api_keys:
            if hmac.compare_digest(k.encode(), key.encode()):
                return owner_id(k)
    if config.no_auth:
        return "local"
    if key:
        svc.key_guard.failed(address)
    message = ("Incorrect API key provided." if key else
               "You didn't provide an API key. Send it as `Authorization: Bearer KEY`.")
    raise ApiError(401, message, code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})


class KeyGuard:
    """Wrong API keys per client address in a sliding minute; `check` answers 429 past the limit."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self.failures: dict[str, deque[float]] = {}
        self.lock = threading.Lock()

    def _recent(self, address: str, now: float) -> deque[float]:
        q = self.failures.setdefault(address, deque())
        while q and q[0] < now - 60:
            q.popleft()
        return q

    def check(self, address: str) -> None:
        now = time.monotonic()
        with self.lock:
            q = self._recent(address, now)
            if len(q) >= self.per_minute:
                wait = max(1, int(q[0] + 60 - now) + 1)
                raise ApiError(429, f"too many wrong API keys from this address; retry after {wait} s",
                               type="rate_limit_error", code="rate_limit_exceeded", headers={"Retry-After": str(wait)})

    def failed(self, address: str) -> None:
        now = time.monotonic()
        with self.lock:
            self._recent(address, now).append(now)
            if len(self.failures) > 10_000:  # bounded memory under many addresses
                self.failures = {a: q for a, q in self.failures.items() if q and q[-1] > now - 60}


LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
STATE_CHANGING = ("POST", "PUT", "PATCH", "DELETE")


def _hostname(value: str) -> str:
    try:
        return (urlsplit(value if "//" in value else f"//{value}").hostname or "").lower()
    except ValueError:
        return ""


class NoAuthGuard:
    """ASGI middleware for --no-auth: loopback Host and Origin only; state changes only as a page of this
    origin can send them (JSON, or the X-Kino-CSRF header, or an Authorization header)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
        host, origin = _hostname(headers.get("host", "")), headers.get("origin")
        problem = None
        if host not in LOOPBACK_NAMES:
            problem = (f"host {headers.get('host', '')!r} is not served: without API keys this server answers only "
                       f"requests to {', '.join(LOOPBACK_NAMES)}")
        elif origin is not None and _hostname(origin) not in LOOPBACK_NAMES:
            problem = f"requests from pages of {origin} are refused by a server without API keys"
        elif scope["method"] in STATE_CHANGING:
            ctype = headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype != "application/json" and "x-kino-csrf" not in headers and "authorization" not in headers:
                problem = ("without API keys, a request that changes something must send JSON (Content-Type: "
                           "application/json) or the header X-Kino-CSRF: 1")
        if problem is not None:
            return await ApiError(403, problem, code="forbidden").response()(scope, receive, send)
        return await self.app(scope, receive, send)


class BodyLimit:
    """ASGI middleware: 413 for a body over `limit` bytes (by Content-Length, or counted as it streams)."""

    def __init__(self, app, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        too_big = ApiError(413, f"the request body is larger than {self.limit} bytes", code="request_too_large")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return await too_big.response()(scope, receive, send)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise too_big
            return message

        return await self.app(scope, counted, send)
