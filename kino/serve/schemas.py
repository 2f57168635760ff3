"""The API's shapes: response models (as OpenAI's `Video`, `VideoDeleteResponse`, the list page) and the
request bodies, which come as JSON or as multipart forms (the official client sends multipart).

Request bodies are parsed by hand in kino/serve/api.py (one parser for both encodings, so errors are the
same), and described here as JSON Schema for /openapi.json.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class VideoError(BaseModel):
    code: str
    message: str


class Video(BaseModel):
    id: str
    object: Literal["video"] = "video"
    model: str
    status: Literal["queued", "in_progress", "completed", "failed"]
    progress: int
    created_at: int
    completed_at: int | None = None
    expires_at: int | None = None
    size: str
    seconds: str
    prompt: str | None = None
    remixed_from_video_id: str | None = None
    error: VideoError | None = None
    mode: str  # kino: text, image-to-video, extend, edit, loop, interpolate, connect, storyboard


class VideoList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Video]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool


class VideoDeleted(BaseModel):
    id: str
    object: Literal["video.deleted"] = "video.deleted"
    deleted: bool


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class Provenance(BaseModel):
    """kino: the C2PA verification of a finished video (what `kino verify` reports)."""

    id: str
    outcome: str  # ok, no_credentials, invalid, not_kino
    explanation: str
    made_by_kino: bool
    signature_and_hash_valid: bool | None = None
    signer: str | None = None
    watermark_present: bool | None = None
    watermark_matches_manifest: bool | None = None


class Options(BaseModel):
    """kino: what this server generates (the studio builds its choices from it)."""

    model: str
    models: list[str]
    sizes: dict[str, list[str]]  # aspect -> native sizes
    size_aliases: dict[str, str]  # OpenAI size -> native size
    default_size: str
    default_seconds: str
    max_seconds: float
    fps: float
    max_prompt_chars: int
    max_shots: int
    auth: bool


# -- request bodies (JSON Schema) ---------------------------------------------------------------------

_STR = {"type": "string"}
_SECONDS = {"type": "string", "description": "Seconds, e.g. \"2\" (OpenAI's \"4\", \"8\", \"12\" too)"}
_SIZE = {"type": "string", "description": "WIDTHxHEIGHT: a native size or one of OpenAI's four"}
_REF = {"type": "object", "properties": {"id": _STR}, "required": ["id"],
        "description": "A completed video of this server"}
_IMAGE = {"type": "object", "properties": {"image_url": {"type": "string", "description": "a data: URL"}}}
_FILE = {"type": "string", "format": "binary"}

BODIES: dict[str, dict] = {
    "create": {"properties": {"prompt": _STR, "model": _STR, "seconds": _SECONDS, "size": _SIZE,
                              "seed": {"type": "integer"}, "input_reference": _IMAGE},
               "required": ["prompt"], "files": ("input_reference",)},
    "remix": {"properties": {"prompt": _STR}, "required": ["prompt"], "files": ()},
    "extend": {"properties": {"prompt": _STR, "seconds": _SECONDS, "video": _REF, "backward": {"type": "boolean"}},
               "required": ["prompt", "seconds", "video"], "files": ("video",)},
    "edit": {"properties": {"prompt": _STR, "video": _REF, "strength": {"type": "number"}},
             "required": ["prompt", "video"], "files": ("video",)},
    "loop": {"properties": {"prompt": _STR, "seconds": _SECONDS, "size": _SIZE, "video": _REF},
             "required": ["prompt"], "files": ("video",)},
    "interpolate": {"properties": {"prompt": _STR, "seconds": _SECONDS, "size": _SIZE,
                                   "keyframes": {"type": "array", "items": _IMAGE, "minItems": 2},
                                   "key_times": {"type": "array", "items": {"type": "number"}}},
                    "required": ["prompt", "keyframes"], "files": ("keyframes",)},
    "connect": {"properties": {"prompt": _STR, "seconds": _SECONDS, "size": _SIZE,
                               "videos": {"type": "array", "items": _REF, "minItems": 2, "maxItems": 2}},
                "required": ["prompt", "videos"], "files": ("videos",)},
    "storyboard": {"properties": {
        "model": _STR, "size": _SIZE, "seed": {"type": "integer"}, "subject": _STR,
        "shots": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["prompt", "seconds"],
            "properties": {"prompt": _STR, "seconds": {"type": "number"},
                           "transition": {"type": "string", "enum": ["continuous", "cut"]}}}}},
        "required": ["shots"], "files": ()},
}


def request_body(name: str) -> dict:
    """openapi_extra for a route whose body is BODIES[name], as JSON or a multipart form."""
    spec = BODIES[name]
    json_schema = {"type": "object", "properties": spec["properties"], "required": list(spec["required"])}
    form_props = dict(spec["properties"])
    for f in spec["files"]:
        many = form_props[f].get("type") == "array"
        form_props[f] = {"type": "array", "items": _FILE} if many else _FILE
    form = {"type": "object", "properties": form_props, "required": list(spec["required"])}
    content = {"application/json": {"schema": json_schema}}
    if spec["files"] or name in ("create",):
        content["multipart/form-data"] = {"schema": form}
    return {"requestBody": {"required": True, "content": content}}
