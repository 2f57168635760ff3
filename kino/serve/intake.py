"""What a POST goes through before anything expensive: the body (JSON or a multipart form) validated by
its pydantic model, then the inputs (uploads, data: URLs, references to this server's videos) bounded
from their headers and stored.

The order is the cheap-first order of the routes (kino/serve/api.py): body size and shape -> fields
(schemas.py) -> rate limits and quotas -> the prompt policy -> inputs. An input is checked from its header
(image width x height; a video's size, declared duration, and frame count from its packets, one frame
decoded) against the ServeConfig's limits before it is stored, and at most `max_decoders` are checked at
once, so a handful of small files that declare huge pictures cannot take the server's memory.
`Inputs` deletes what a request stored when the request fails: a rejected request leaves nothing.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import threading
from typing import Any

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from kino.errors import KinoError
from kino.serve.errors import ApiError, bad, from_kino, not_found
from kino.serve.jobs import Job, valid_id
from kino.serve.schemas import Body, ImageRef, VideoRef


async def parse_body(request: Request, model: type[Body]) -> Body:
    """The body as `model`. Multipart keys `a[b]`, `a[0][b]` and `a[]` nest as the OpenAI client writes
    them; empty values mean "not given" in both encodings (a form sends "" for an empty field)."""
    config = request.app.state.service.config
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/json" or not ctype:
        declared = request.headers.get("content-length", "0")
        raw = b"" if declared.isdigit() and int(declared) > config.max_json_bytes else await request.body()
        if len(raw) > config.max_json_bytes or (declared.isdigit() and int(declared) > config.max_json_bytes):
            raise ApiError(413, f"the JSON body is larger than {config.max_json_bytes} bytes; send large inputs as "
                           f"multipart uploads", code="request_too_large")
        data = await run_in_threadpool(_json, raw) if raw else {}
    elif ctype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        try:
            form = await request.form(max_files=config.max_files, max_fields=256)
        except Exception as e:  # malformed multipart, too many parts
            raise bad(f"the form could not be read ({type(e).__name__}: {str(e)[:80]})") from None
        data = {}
        for key, value in form.multi_items():
            _put(data, key, value)
    else:
        raise ApiError(415, f"content type {ctype!r} is not supported; send application/json or multipart/form-data",
                       code="unsupported_media_type")
    data = {k: v for k, v in data.items() if v not in ("", None)}
    try:
        return model.model_validate(data, context={"config": config})
    except ValidationError as e:
        raise invalid(e) from None


def _json(raw: bytes) -> dict:
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise bad("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise bad("the body must be a JSON object")
    return data


def invalid(e: ValidationError) -> ApiError:
    """The first error of a validation, as one line naming the field: `seconds '1_0' is not a number ...`."""
    first = e.errors(include_url=False)[0]
    loc = [str(p) for p in first.get("loc", ()) if not str(p).startswith(("function-", "is-instance["))]
    loc = [p for p in loc if p not in ("VideoRef", "ImageRef", "UploadFile", "list[...]")]
    param = ".".join(loc) or None
    msg = str(first.get("msg", "is not valid")).removeprefix("Value error, ")
    if first.get("type") == "missing":
        return bad(f"{param} is required", param, "missing_required_parameter")
    return bad(f"{param or 'the body'}: {msg}" if not msg.startswith(("is ", "must ")) else f"{param} {msg}", param)


def _put(out: dict, key: str, value) -> None:
    parts = key.replace("]", "").split("[")
    node: Any = out
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) > 64:
                raise bad(f"form field {key!r} is not understood", key)
            while len(node) <= int(part):
                node.append({})
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
            continue
        if not isinstance(node, dict):
            raise bad(f"form field {key!r} is not understood", key)
        if last or (i == len(parts) - 2 and parts[-1] == ""):  # a[] or a repeated: a list
            if part in node:
                if not isinstance(node[part], list):
                    node[part] = [node[part]]
                node[part].append(value)
            else:
                node[part] = [value] if not last else value
            return
        nxt = parts[i + 1]
        node = node.setdefault(part, [] if nxt.isdigit() else {})


def checked(fn, param: str | None = None):
    """fn(), a KinoError from it as a 400 naming `param`."""
    try:
        return fn()
    except KinoError as e:
        raise from_kino(e, param) from None


# -- inputs --------------------------------------------------------------------------------------------


def completed(svc, jid: str, owner: str, param: str = "video_id") -> Job:
    """The owner's completed, unexpired video `jid`, or a 404 / 400 naming `param`."""
    job = svc.store.get(jid, owner) if valid_id(jid) else None
    if job is None:
        raise not_found(jid)
    if job.status != "completed" or job.is_expired():
        state = "expired" if job.is_expired() else job.status
        raise bad(f"video {jid} is {state}; only a completed video can be used", param, "video_not_ready")
    return job


class Inputs:
    """The inputs one request stores. `async with Inputs(svc) as inputs:` deletes every one of them when the
    block raises (the request was rejected); `keep()` hands them to the queued job."""

    def __init__(self, svc) -> None:
        self.svc, self.names, self.frames = svc, [], {}

    async def __aenter__(self) -> Inputs:
        return self

    async def __aexit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.svc.storage.delete_inputs(self.names)

    def path(self, name: str) -> str:
        return str(self.svc.storage.input_path(name))

    async def image(self, value, param: str) -> str:
        """An uploaded image or {image_url: data URL} -> the stored PNG's path."""
        data = await _image_bytes(self.svc, value, param)
        name = await run_in_threadpool(self._decoding, lambda: self.svc.storage.save_image(
            data, param, max_pixels=self.svc.config.max_image_pixels), param)
        self.names.append(name)
        return self.path(name)

    async def video(self, value, param: str, owner: str, sm):
        """An uploaded video or {id} of this owner's completed video, for the served model `sm`
        (kino.serve.served.ServedModel) -> (stored path, frames, source job, size): the size is the model's
        size nearest to the video's (it generates only its own sizes); a source video's own when it has it."""
        if isinstance(value, UploadFile):
            data = await upload_bytes(self.svc, value, param)
            name, frames, _ = await run_in_threadpool(self._decoding, lambda: self.svc.storage.save_video(
                data, param, self.svc.config.max_video_pixels, sm.max_input_frames), param)
            self.names.append(name)
            return self.path(name), frames, None, self._kept(self.path(name), sm)
        assert isinstance(value, VideoRef)
        job = completed(self.svc, value.id, owner, param)
        name = self.svc.storage.keep_source(job.id)
        self.names.append(name)
        size = tuple(map(int, job.size.split("x")))
        if "{}x{}".format(*size) not in sm.offer.sizes:  # made by another served model
            size = sm.offer.nearest_size(*size)
        return self.path(name), await run_in_threadpool(_frames, self.path(name)), job, size

    def _kept(self, path: str, sm) -> tuple[int, int]:
        """An upload's size as the command line keeps it (kino.generation.kept_size), then the nearest size
        the model offers (it generates only those)."""
        from kino.generation import kept_size

        kept = kept_size(path, sm.model.defaults)
        return sm.offer.nearest_size(*kept) if kept else sm.offer.resolve_size(sm.default_size)

    def _decoding(self, fn, param: str):
        with self.svc.decoders:  # at most config.max_decoders inputs are checked at once
            return checked(fn, param)


def _frames(path: str) -> int:
    """The frames of a video this server made, from its header (its model's rate may not be the one it is
    given to now)."""
    from kino.io import probe

    return max(1, probe(path).num_frames)


async def upload_bytes(svc, f: UploadFile, param: str) -> bytes:
    data = await f.read(svc.config.max_upload_bytes + 1)
    if len(data) > svc.config.max_upload_bytes:
        raise ApiError(413, f"{param} is larger than {svc.config.max_upload_bytes} bytes", param=param,
                       code="upload_too_large")
    if not data:
        raise bad(f"{param} is empty", param)
    return data


async def _image_bytes(svc, value, param: str) -> bytes:
    if isinstance(value, UploadFile):
        return await upload_bytes(svc, value, param)
    assert isinstance(value, ImageRef)
    url = value.image_url
    if not url.startswith("data:") or ";base64," not in url:
        raise bad(f"{param}.image_url must be a data: URL (base64); kino serve fetches nothing from the network",
                  param)
    if len(url) > math.ceil(svc.config.max_upload_bytes * 4 / 3) + 200:
        raise ApiError(413, f"{param} is larger than {svc.config.max_upload_bytes} bytes", param=param,
                       code="upload_too_large")
    try:
        return base64.b64decode(url.split(";base64,", 1)[1], validate=True)
    except (binascii.Error, ValueError):
        raise bad(f"{param}.image_url is not valid base64", param) from None


def decoders(n: int) -> threading.BoundedSemaphore:
    return threading.BoundedSemaphore(max(1, n))
