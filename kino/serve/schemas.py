"""The API's shapes, each declared once as a pydantic model: the request bodies (as JSON or as multipart
forms: the official client sends multipart) and the responses (OpenAI's `Video`, `VideoDeleteResponse`,
the list page, kino's options and provenance).

FastAPI writes /openapi.json from these models (`body_schema`); kino/serve/api.py validates every body
with them (`parse_body`), so a field is named in one place. Checks that depend on the server (sizes,
the longest video, the longest prompt) read the ServeConfig from the validation context.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from fastapi import UploadFile
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

# -- field types ------------------------------------------------------------------------------------------

SECONDS_PATTERN = r"^[0-9]{1,4}(\.[0-9]{1,3})?$"  # ASCII digits only: no "1_0", no "\u0664", no "1e-300"
_SECONDS_RE = re.compile(SECONDS_PATTERN)
MIN_SECONDS = 0.1  # a sane minimum: at least one frame at the model's rate (checked again per model)


def visible(text: str) -> str:
    """What a prompt says once invisible characters are removed: kino.safety's normalization (Unicode format
    characters dropped, NFKC), the same the policy and the text encoder apply, without white space around."""
    from kino.safety.normalize import strip_invisible

    return strip_invisible(text).strip()


def _clean_text(value: str, info: ValidationInfo) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("is not valid text (it holds a lone UTF-16 surrogate)") from None
    config = (info.context or {}).get("config")
    limit = getattr(config, "max_prompt_chars", None)
    if limit is not None and len(value) > limit:
        raise ValueError(f"is {len(value)} characters; at most {limit} are accepted")
    return value


def _prompt(value: str, info: ValidationInfo) -> str:
    value = _clean_text(value, info)
    if not visible(value):
        raise ValueError('is empty (or only invisible characters); describe the video, e.g. "a red circle moves left"')
    return value


def _seconds(value: Any, info: ValidationInfo) -> float:
    """"4", 4 or 2.5 -> float in [MIN_SECONDS, max_seconds]. Strings are plain ASCII decimals."""
    config = (info.context or {}).get("config")
    top = getattr(config, "max_seconds", 1e4)
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError("must be a number of seconds, e.g. \"2\"")
    if isinstance(value, str):
        if not _SECONDS_RE.match(value.strip()):
            raise ValueError(f"{value!r} is not a number of seconds; give plain digits such as \"2\" or \"2.5\" "
                             f"in [{MIN_SECONDS:g}, {top:g}]")
        value = float(value.strip())
    value = float(value)
    if not math.isfinite(value) or not MIN_SECONDS <= value <= top:
        raise ValueError(f"{value:g} is not valid; give a number of seconds in [{MIN_SECONDS:g}, {top:g}], "
                         f"e.g. \"2\" or OpenAI's \"4\", \"8\", \"12\"")
    return value


def _time(value: Any, info: ValidationInfo) -> float:
    """A keyframe time: like seconds, but 0 is allowed."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0:
        return 0.0
    if isinstance(value, str) and value.strip() and set(value.strip()) <= set("0."):
        return 0.0
    return _seconds(value, info)


Text = Annotated[str, AfterValidator(_clean_text)]
Prompt = Annotated[str, AfterValidator(_prompt)]
Seconds = Annotated[float, BeforeValidator(_seconds),
                    WithJsonSchema({"type": "string", "pattern": SECONDS_PATTERN,
                                    "description": "Seconds, e.g. \"2\" (OpenAI's \"4\", \"8\", \"12\" too)"})]
KeyTime = Annotated[float, BeforeValidator(_time), WithJsonSchema({"type": "number", "minimum": 0})]
Size = Annotated[str, Field(max_length=16, description="WIDTHxHEIGHT: a native size or one of OpenAI's four")]
Seed = Annotated[int, Field(ge=0, le=2**31 - 1)]
Upload = Annotated[UploadFile, WithJsonSchema({"type": "string", "format": "binary"})]


class Body(BaseModel):
    """A request body. Unknown fields are ignored (as OpenAI's API does for forward compatibility)."""

    model_config = ConfigDict(extra="ignore", str_max_length=100_000)


class VideoRef(Body):
    """A completed video of this server, by id."""

    id: str = Field(max_length=64)


class ImageRef(Body):
    """An image as a data: URL (the server fetches nothing from the network)."""

    image_url: str = Field(description="a data: URL (base64)", max_length=64 * 1024 * 1024)


VideoInput = VideoRef | Upload
ImageInput = ImageRef | Upload


def _one(value: Any) -> Any:
    """A form's single `video` field may arrive as a one-item list."""
    return value[0] if isinstance(value, list) and len(value) == 1 else value


class _Common(Body):
    model: Text | None = Field(None, max_length=200)
    seed: Seed | None = None


class CreateVideo(_Common):
    """POST /v1/videos: text to video, or image to video with input_reference."""

    prompt: Prompt
    seconds: Seconds | None = None
    size: Size | None = None
    input_reference: ImageInput | None = None


class RemixVideo(Body):
    """POST /v1/videos/{id}/remix: the same mode, inputs, seed, size and length; a new prompt."""

    prompt: Prompt


class ExtendVideo(_Common):
    """POST /v1/videos/extensions: continue a video (after it, or before it with backward)."""

    prompt: Prompt | None = None
    seconds: Seconds  # the length of the new part
    video: Annotated[VideoInput, BeforeValidator(_one)]
    size: Size | None = None
    backward: bool = False


class EditVideo(_Common):
    """POST /v1/videos/edits: SDEdit a video by prompt."""

    prompt: Prompt
    video: Annotated[VideoInput, BeforeValidator(_one)]
    strength: float | None = Field(None, ge=0.0, le=1.0)
    size: Size | None = None


class LoopVideo(_Common):
    """POST /v1/videos/loops: a seamless loop, new (prompt) or of a video (prompt optional)."""

    prompt: Prompt | None = None
    seconds: Seconds | None = None  # new: the loop's length; of a video: the closing transition's
    size: Size | None = None
    video: Annotated[VideoInput | None, BeforeValidator(_one)] = None


class InterpolateVideo(_Common):
    """POST /v1/videos/interpolations: frames between keyframe images."""

    prompt: Prompt | None = None
    seconds: Seconds | None = None
    size: Size | None = None
    keyframes: list[ImageInput] = Field(min_length=2, max_length=16)
    key_times: list[KeyTime] | None = Field(None, max_length=16)

    @field_validator("key_times")
    @classmethod
    def _increasing(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and any(b <= a for a, b in zip(v, v[1:], strict=False)):
            raise ValueError("must increase (one time in seconds per keyframe, the first usually 0)")
        return v


class ConnectVideos(_Common):
    """POST /v1/videos/connections: a transition from the end of one video into the start of another."""

    prompt: Prompt | None = None
    seconds: Seconds | None = None  # the transition's length
    size: Size | None = None
    videos: list[VideoInput] = Field(min_length=2, max_length=2)


class Shot(Body):
    prompt: Prompt
    seconds: Seconds
    transition: Literal["continuous", "cut"] = "continuous"


class CreateStoryboard(_Common):
    """POST /v1/videos/storyboards: several shots in one video."""

    shots: list[Shot] = Field(min_length=1, max_length=64)
    size: Size | None = None
    subject: Text | None = Field(None, max_length=2000)


BODIES: dict[str, type[Body]] = {"create": CreateVideo, "remix": RemixVideo, "extend": ExtendVideo,
                                 "edit": EditVideo, "loop": LoopVideo, "interpolate": InterpolateVideo,
                                 "connect": ConnectVideos, "storyboard": CreateStoryboard}


def body_schema(model: type[Body]) -> dict:
    """openapi_extra for a route whose body is `model`, as JSON or a multipart form (files as binary)."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = schema.pop("$defs", {})
    content = {"application/json": {"schema": schema}, "multipart/form-data": {"schema": schema}}
    return {"requestBody": {"required": True, "content": content}, "x-kino-defs": defs}


# -- responses ---------------------------------------------------------------------------------------------


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
    seed: int | None = None  # kino: the seed it was (or will be) made with
    enhanced_prompt: str | None = None  # kino: what the model was given, once known


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
    modes: list[str] = []  # the modes the default model can do (kino.families; the studio shows only these)
    # served model name -> its family, variant, modes, LoRAs, sizes, default size and length, fps and frames per
    # pass (kino.serve.served; the studio's picker and choices); the fields above are the default model's
    served: dict[str, dict] = {}
