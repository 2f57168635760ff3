"""ServeConfig: everything `kino serve` can be told, validated when built.

The server's options are defined here once; the command line (kino/commands/serve.py) fills them and the
app (kino/serve/app.py) reads them. Sizes are each served model's native sizes (multiples of its size
multiple; `NAME=WIDTHxHEIGHT` offers one to the model served as NAME only, kino.serve.served); OpenAI's
sizes are accepted as aliases of one of them (see SIZE_ALIASES), so a client written against the Sora API
runs unchanged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from kino.errors import InputError
from kino.request import EDIT_STRENGTH

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")

# OpenAI's model names: accepted and echoed back, all served by the loaded model.
OPENAI_MODELS = ("sora-2", "sora-2-pro", "sora-2-2025-10-06", "sora-2-pro-2025-10-06", "sora-2-2025-12-08")


class Aspect(StrEnum):
    SQUARE = "square"
    LANDSCAPE = "landscape"
    PORTRAIT = "portrait"


# OpenAI's sizes -> (aspect, scale index into the native sizes of that aspect)
SIZE_ALIASES = {
    "1280x720": (Aspect.LANDSCAPE, 0),
    "720x1280": (Aspect.PORTRAIT, 0),
    "1792x1024": (Aspect.LANDSCAPE, 1),
    "1024x1792": (Aspect.PORTRAIT, 1),
}


class RestartPolicy(StrEnum):
    """What happens on start to a job that was in progress when the server died."""

    RETRY = "retry"  # queue it again (up to max_attempts runs in all), then fail it
    FAIL = "fail"  # mark it failed with code server_restarted


# the tiny kino model's sizes: what a kino model offers unless --size says otherwise
DEFAULT_SIZES = ("64x64", "112x64", "64x112", "128x128", "224x128", "128x224")


def parse_size(text: str) -> tuple[int, int]:
    parts = str(text).lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and len(p) <= 6 for p in parts):
        raise InputError(f"size {text!r} is not WIDTHxHEIGHT, e.g. 64x64")
    return int(parts[0]), int(parts[1])


def split_size(text: str) -> tuple[str | None, str]:
    """A --size entry: "64x64" -> (None, "64x64"), offered by every model; "wan=832x480" -> ("wan", "832x480"),
    offered by the model served as wan. InputError unless the size is WIDTHxHEIGHT."""
    name, eq, size = str(text).rpartition("=")
    parse_size(size)
    if eq and not name:
        raise InputError(f"size {text!r} names no model; write NAME=WIDTHxHEIGHT, e.g. wan=832x480")
    return (name or None), size


@dataclass(frozen=True)
class SizeOffer:
    """The native sizes one model offers (WIDTHxHEIGHT) and how a request's size maps onto them."""

    sizes: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.sizes:
            raise InputError("give at least one size, e.g. --size 64x64")
        for s in self.sizes:
            parse_size(s)

    def by_aspect(self) -> dict[Aspect, list[tuple[int, int]]]:
        """The native sizes of each aspect, smallest first."""
        out: dict[Aspect, list[tuple[int, int]]] = {a: [] for a in Aspect}
        for s in self.sizes:
            w, h = parse_size(s)
            out[Aspect.SQUARE if w == h else Aspect.LANDSCAPE if w > h else Aspect.PORTRAIT].append((w, h))
        return {a: sorted(v, key=lambda wh: wh[0] * wh[1]) for a, v in out.items()}

    def resolve_size(self, text: str) -> tuple[int, int]:
        """A native size or an OpenAI alias -> (width, height); InputError naming the valid values."""
        if text in self.sizes:
            return parse_size(text)
        if text in SIZE_ALIASES:
            aspect, scale = SIZE_ALIASES[text]
            options = self.by_aspect()[aspect] or self.by_aspect()[Aspect.SQUARE] or [parse_size(self.sizes[0])]
            return options[min(scale, len(options) - 1)]
        raise InputError(f"size {text!r} is not supported; valid sizes are {', '.join(self.sizes)} "
                         f"(or OpenAI's {', '.join(SIZE_ALIASES)}, mapped to the nearest aspect)")

    def nearest_size(self, width: int, height: int) -> tuple[int, int]:
        """The offered size nearest to width x height: the same aspect (square, landscape, portrait) and the
        closest area (an upload's own size when it is offered)."""
        import math

        aspect = Aspect.SQUARE if width == height else Aspect.LANDSCAPE if width > height else Aspect.PORTRAIT
        options = self.by_aspect()[aspect] or [parse_size(s) for s in self.sizes]
        return min(options, key=lambda wh: (abs(math.log(wh[0] * wh[1] / max(1, width * height))),
                                            abs(math.log(wh[0] / wh[1] / (width / max(1, height))))))


@dataclass(frozen=True)
class ServeConfig:
    """How `kino serve` runs. Defaults suit the tiny CPU model on one machine."""

    model_dir: Path | None = None  # None: the built-in model; [NAME=]DIR, the default model
    more_models: tuple[Path, ...] = ()  # further [NAME=]DIR models served at once (`--model` repeated)
    data_dir: Path = Path("kino-serve-data")  # jobs.sqlite3, videos/, uploads/
    host: str = "127.0.0.1"
    port: int = 8000
    api_keys: tuple[str, ...] = ()
    no_auth: bool = False  # only allowed on a loopback host
    devices: tuple[str, ...] = ("cpu",)  # one worker (one generation at a time) per device
    loras: tuple[str, ...] = ()  # LoRA files FILE[:SCALE] applied to the model (kino.families.lora)
    threads: int = 0  # torch CPU threads (0: torch's default)
    # limits
    queue_size: int = 32  # queued jobs past which POSTs get 429 + Retry-After
    max_active_per_key: int = 8  # queued + in-progress jobs one key may have
    max_request_bytes: int = 64 * 1024 * 1024
    max_upload_bytes: int = 32 * 1024 * 1024
    max_prompt_chars: int = 2000
    max_seconds: float = 20.0  # the longest video, and the longest an extension, connection or loop may end up
    max_shots: int = 16
    max_json_bytes: int = 8 * 1024 * 1024  # a JSON body (parsed in memory); larger inputs come as uploads
    max_files: int = 17  # uploads in one form (interpolation: 16 keyframes)
    max_image_pixels: int = 4096 * 4096  # an image's width x height, read from its header before decoding
    max_video_pixels: int = 1920 * 1080  # a video frame's width x height, from the header
    max_decoders: int = 2  # inputs checked (decoded) at once; the others wait their turn
    # storage
    quota_bytes_per_key: int = 2 * 1024**3  # videos and inputs one key may keep (429 insufficient_quota past it)
    quota_bytes_total: int = 20 * 1024**3  # ... and all keys together
    db_timeout: float = 30.0  # seconds a write waits for SQLite's lock before the store counts as unavailable
    stuck_seconds: float = 600.0  # /health reports a worker that has not moved on a job this long
    key_failures_per_minute: int = 10  # wrong API keys one client address may send a minute (then 429)
    # what is generated
    # [NAME=]WIDTHxHEIGHT: plain sizes are every model's (each must make them); NAME= ones only that model's.
    # A model with no size given offers its own: kino's DEFAULT_SIZES, another family its trained sizes.
    sizes: tuple[str, ...] = DEFAULT_SIZES
    default_size: str | None = None  # None: each model's own (its native size if offered, else its first)
    default_seconds: float | None = None  # None: each model's own (at most max_seconds)
    steps: int | None = None  # sampling steps (None: the model's own)
    enhance: bool = True  # expand prompts into the detailed captions the model trained on
    edit_strength: float = EDIT_STRENGTH  # SDEdit noise level of /v1/videos/edits
    # lifetime
    expiry_seconds: int = 24 * 3600  # assets are deleted this long after a job completes
    cleanup_interval: float = 60.0
    on_restart: RestartPolicy = RestartPolicy.RETRY
    max_attempts: int = 2
    safety_policy: Path | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        object.__setattr__(self, "on_restart", _choice(RestartPolicy, self.on_restart, "on_restart"))
        object.__setattr__(self, "api_keys", tuple(k for k in self.api_keys if k))
        if self.no_auth and self.host not in LOCAL_HOSTS:
            raise InputError(f"--no-auth is only allowed on a loopback host ({', '.join(LOCAL_HOSTS)}), not "
                             f"{self.host}; give --api-key-file PATH (or KINO_API_KEYS) instead")
        if not self.no_auth and not self.api_keys:
            raise InputError("the server needs an API key: --api-key-file PATH (or KINO_API_KEYS=k1,k2), or "
                             "--no-auth on 127.0.0.1 to run without one")
        if any(len(k) < 8 or any(c.isspace() for c in k) for k in self.api_keys):
            raise InputError("API keys must be at least 8 characters without spaces")
        if not 0 <= self.port <= 65535:
            raise InputError(f"port {self.port} is out of range; use 0-65535 (0: any free port)")
        for name in ("queue_size", "max_active_per_key", "max_request_bytes", "max_upload_bytes",
                     "max_prompt_chars", "max_shots", "max_attempts", "expiry_seconds", "max_json_bytes", "max_files",
                     "max_image_pixels", "max_video_pixels", "max_decoders", "quota_bytes_per_key",
                     "quota_bytes_total", "key_failures_per_minute"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not (self.max_seconds > 0 and self.cleanup_interval > 0 and self.db_timeout > 0 and self.stuck_seconds > 0):
            raise InputError("max_seconds, cleanup_interval, db_timeout and stuck_seconds must be > 0")
        if not self.devices:
            raise InputError("give at least one device, e.g. --device cpu")
        if self.steps is not None and not 1 <= self.steps <= 1000:
            raise InputError(f"steps must be in [1, 1000], got {self.steps}")
        if not 0.0 <= self.edit_strength <= 1.0:
            raise InputError(f"edit_strength must be in [0, 1], got {self.edit_strength}")
        if not self.sizes:
            raise InputError("give at least one size, e.g. --size 64x64")
        offered = [split_size(s)[1] for s in self.sizes]
        if self.default_size is not None and self.default_size not in offered:
            raise InputError(f"default size {self.default_size} is not one of the sizes {', '.join(offered)}")
        if self.default_seconds is not None and not 0 < self.default_seconds <= self.max_seconds:
            raise InputError(f"default seconds must be in (0, {self.max_seconds:g}]")

    @property
    def local(self) -> bool:
        return self.host in LOCAL_HOSTS

    def sizes_for(self, name: str) -> tuple[str, ...]:
        """The sizes --size gives the model served as `name`: its NAME= ones, else the plain ones (empty: the
        model offers its own, kino.serve.served)."""
        entries = [split_size(s) for s in self.sizes]
        named = tuple(s for n, s in entries if n == name)
        return named or tuple(s for n, s in entries if n is None)

    def offer(self) -> SizeOffer:
        """The plain sizes (every model's), as a SizeOffer."""
        return SizeOffer(tuple(s for n, s in map(split_size, self.sizes) if n is None) or DEFAULT_SIZES)

    def resolve_size(self, text: str) -> tuple[int, int]:
        """SizeOffer.resolve_size over the plain sizes."""
        return self.offer().resolve_size(text)

    def resolve_seconds(self, value, what: str = "seconds") -> float:
        """'4', 4 or 2.5 -> float in [MIN_SECONDS, max_seconds], parsed strictly (kino.serve.schemas.Seconds:
        plain ASCII decimals, no "1_0", no other scripts' digits, no exponents); InputError saying the range."""
        from pydantic import TypeAdapter, ValidationError

        from kino.serve.schemas import Seconds

        try:
            return TypeAdapter(Seconds).validate_python(value, context={"config": self})
        except ValidationError as e:
            msg = str(e.errors(include_url=False)[0]["msg"]).removeprefix("Value error, ")
            raise InputError(f"{what} {msg}") from None


def _choice(enum, value, name: str):
    try:
        return enum(value)
    except ValueError:
        raise InputError(f"{name} {value!r} is not valid; choose one of {', '.join(e.value for e in enum)}") from None


def keys_from_env() -> tuple[str, ...]:
    """API keys from KINO_API_KEYS (comma separated)."""
    return tuple(k.strip() for k in os.environ.get("KINO_API_KEYS", "").split(",") if k.strip())
