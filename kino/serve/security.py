"""API keys and request limits.

A request to /v1 carries `Authorization: Bearer KEY`; the key is compared in constant time with the
configured ones, and the jobs it makes belong to it (its owner id is a hash of the key, so the key
itself is never stored). Only a server bound to a loopback address may run without keys (--no-auth),
and then every request belongs to "local". Bodies larger than max_request_bytes get a 413 before they
are read to the end.
"""

from __future__ import annotations

import hashlib
import hmac

from fastapi import Request

from kino.serve.errors import ApiError


def owner_id(key: str) -> str:
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:24]


def owner_of(request: Request) -> str:
    """FastAPI dependency: the owner of this request, or a 401 in OpenAI's shape."""
    config = request.app.state.service.config
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    key = key.strip()
    if scheme.lower() == "bearer" and key:
        for k in config.api_keys:
            if hmac.compare_digest(k.encode(), key.encode()):
                return owner_id(k)
    if config.no_auth:
        return "local"
    message = ("Incorrect API key provided." if key else
               "You didn't provide an API key. Send it as `Authorization: Bearer KEY`.")
    raise ApiError(401, message, code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})


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
