"""Recaptioning: captions at three detail levels for every clip of a manifest (DALL-E 3's technique).

A `Captioner` looks at a few frames of a clip and returns {level: text}. Three backends:
  - world: the exact captions of a world clip from its scene spec (`specs.jsonl` beside the clips
    that `kino world sample` writes), through kino.world.caption;
  - openai: a vision-language model behind any OpenAI-compatible chat-completions endpoint
    (vLLM, llama.cpp server, Ollama, OpenAI), reached with the standard library's urllib: frames
    go as base64 JPEG data URLs, the reply must be JSON with the three levels; retried with
    exponential backoff on timeouts, connection errors, 429 and 5xx;
  - local: a transformers image-to-text model from a local folder (imported lazily).
`caption_manifest` runs one over a manifest; a clip that fails is recorded in the sidecar, never fatal.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from kino.data.manifest import (
    CaptionLevel,
    ClipRecord,
    Skipped,
    read_manifest,
    read_sidecar,
    write_manifest,
    write_sidecar,
)
from kino.errors import DependencyError, InputError, KinoError, ModelError


class CaptionBackend(StrEnum):
    OPENAI = "openai"
    LOCAL = "local"
    WORLD = "world"


class Captioner(Protocol):
    """caption(frames, meta) -> {CaptionLevel value: text}; frames are (H, W, 3) uint8."""

    def caption(self, frames: list[np.ndarray], meta: dict[str, Any]) -> dict[str, str]: ...


LEVELS = tuple(lv.value for lv in CaptionLevel)

PROMPT = (
    "These are frames of one video clip in time order. Describe the clip as JSON with exactly three "
    'string fields: "short" (under 12 words: the main subject and action), "medium" (one or two '
    'sentences: subjects, motion, setting) and "detailed" (a paragraph: every visible subject with '
    "its appearance and motion, the background, lighting, camera movement and any events). "
    "Reply with the JSON object only."
)


# ----------------------------------------------------------------------------- world


class WorldCaptioner:
    """Captions of world clips from their scene specs (exact, no model).

    `specs.jsonl` lines are {"file": NAME, "seed": N, "spec": {...}} (a bare spec dict is read too,
    matched to the folder's videos in sorted order). `meta["path"]` names the clip's source file.
    """

    def __init__(self, specs: dict[str, tuple[dict, int]]) -> None:
        self.specs = specs  # resolved source path -> (spec dict, seed)

    @classmethod
    def for_manifest(cls, records: list[ClipRecord], manifest_dir: Path) -> WorldCaptioner:
        from kino.data.prepare import read_specs

        specs: dict[str, tuple[dict, int]] = {}
        for folder in sorted({r.source(manifest_dir).resolve().parent for r in records}):
            f = folder / "specs.jsonl"
            if f.is_file():
                specs.update(read_specs(f))
        if not specs:
            raise InputError("no specs.jsonl beside the manifest's clips; the world backend needs "
                             "clips written by `kino world sample`")
        return cls(specs)

    def caption(self, frames: list[np.ndarray], meta: dict[str, Any]) -> dict[str, str]:
        from kino.world.caption import captions
        from kino.world.spec import SceneSpec

        key = str(Path(meta["path"]).resolve())
        if key not in self.specs:
            raise InputError(f"{Path(key).name}: no scene spec for this file in specs.jsonl")
        spec, seed = self.specs[key]
        out = captions(SceneSpec.from_dict(spec), seed=seed)
        return {str(k): v for k, v in out.items() if str(k) in LEVELS}


# ----------------------------------------------------------------------------- OpenAI-compatible


@dataclass(frozen=True)
class OpenAIConfig:
    """Where and how to reach a chat-completions endpoint; `from_env` reads KINO_CAPTION_*.

    There is no default endpoint: kino serve's own address is no captioner, and guessing one only
    turns "not configured" into a timeout per clip."""

    base_url: str | None = None
    model: str = "default"
    api_key: str = ""
    timeout: float = 60.0  # seconds per request
    retries: int = 3  # extra tries after the first, for timeouts, connection errors, 429 and 5xx
    backoff: float = 1.0  # seconds before the first retry; doubles each time
    num_frames: int = 3
    max_side: int = 512  # frames are shrunk to at most this many pixels a side

    def __post_init__(self) -> None:
        if not self.base_url:
            raise InputError("the openai caption backend needs an endpoint: --base-url URL or KINO_CAPTION_BASE_URL "
                             "(an OpenAI-compatible server with a vision model); offline, use --backend world "
                             "(clips of kino's world) or --backend local --model-dir DIR")
        if not self.base_url.startswith(("http://", "https://")):
            raise InputError(f"caption base URL {self.base_url!r} must start with http:// or https://")
        if self.timeout <= 0 or self.retries < 0 or self.backoff < 0 or self.num_frames < 1:
            raise InputError("caption timeout must be > 0, retries and backoff >= 0, num_frames >= 1")

    @classmethod
    def from_env(cls, **overrides: Any) -> OpenAIConfig:
        env = {
            "base_url": os.environ.get("KINO_CAPTION_BASE_URL"),
            "model": os.environ.get("KINO_CAPTION_MODEL"),
            "api_key": os.environ.get("KINO_CAPTION_API_KEY"),
        }
        values = {k: v for k, v in env.items() if v}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


class OpenAICaptioner:
    """A vision-language model over an OpenAI-compatible `/chat/completions` endpoint (urllib only)."""

    def __init__(self, config: OpenAIConfig, sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        self.sleep = sleep

    def caption(self, frames: list[np.ndarray], meta: dict[str, Any]) -> dict[str, str]:
        content: list[dict] = [{"type": "text", "text": PROMPT}]
        for f in frames[: self.config.num_frames]:
            content.append({"type": "image_url", "image_url": {"url": jpeg_data_url(f, self.config.max_side)}})
        body = {"model": self.config.model, "messages": [{"role": "user", "content": content}],
                "temperature": 0.2}
        reply = self._post(body)
        try:
            text = reply["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise ModelError("caption server reply has no choices[0].message.content") from None
        return parse_levels(text)

    def _post(self, body: dict) -> dict:
        url = self.config.base_url.rstrip("/") + "/chat/completions"
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if self.config.api_key:
            headers["Authorization"] = f"Bearer {self.config.api_key}"
        last = ""
        for attempt in range(self.config.retries + 1):
            if attempt:
                self.sleep(self.config.backoff * 2 ** (attempt - 1))
            req = urllib.request.Request(url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=self.config.timeout) as r:
                    raw = r.read()
            except urllib.error.HTTPError as e:
                last = f"HTTP {e.code}"
                if e.code == 429 or e.code >= 500:
                    continue
                raise ModelError(f"caption server at {url} refused the request ({last})") from None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
                reason = getattr(e, "reason", e)
                last = "timed out" if isinstance(reason, TimeoutError) else str(reason)
                continue
            try:
                return json.loads(raw)
            except json.JSONDecodeError:
                raise ModelError(f"caption server at {url} sent a reply that is not JSON") from None
        raise ModelError(f"caption server at {url} failed after {self.config.retries + 1} tries ({last})")


def jpeg_data_url(frame: np.ndarray, max_side: int = 512) -> str:
    """A frame (H, W, 3) uint8 as a `data:image/jpeg;base64,...` URL, shrunk to at most max_side."""
    from PIL import Image

    im = Image.fromarray(frame)
    im.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def parse_levels(text: str) -> dict[str, str]:
    """The {short, medium, detailed} JSON object in a model's reply (code fences allowed)."""
    m = re.search(r"\{.*\}", text or "", flags=re.S)
    try:
        obj = json.loads(m.group(0)) if m else None
    except json.JSONDecodeError:
        obj = None
    if not isinstance(obj, dict):
        raise ModelError(f"caption reply is not a JSON object: {(text or '')[:80]!r}")
    out = {lv: str(obj[lv]).strip() for lv in LEVELS if isinstance(obj.get(lv), str) and obj[lv].strip()}
    if not out:
        raise ModelError(f"caption reply has none of the fields {', '.join(LEVELS)}")
    return out


# ----------------------------------------------------------------------------- local transformers


class LocalCaptioner:
    """A transformers image-to-text model from a local folder (no download).

    It captions the first, middle and last frames: `short` is the middle frame's caption and
    `detailed` joins the distinct captions in time order (an image captioner sees no motion).
    """

    def __init__(self, model_dir: str | os.PathLike, device: str = "cpu") -> None:
        d = Path(model_dir)
        if not (d.is_dir() and (d / "config.json").is_file()):
            raise ModelError(f"{d}: not a transformers model folder (no config.json); give a local "
                             "image-to-text model directory")
        try:
            from transformers import pipeline
        except ImportError:
            raise DependencyError("the local captioner needs transformers; pip install transformers") from None
        try:
            self.pipe = pipeline("image-to-text", model=str(d), device=device)
        except Exception as e:
            raise ModelError(f"{d}: cannot load an image-to-text model ({str(e).splitlines()[0][:120]})") from None

    def caption(self, frames: list[np.ndarray], meta: dict[str, Any]) -> dict[str, str]:
        from PIL import Image

        picks = [frames[0], frames[len(frames) // 2], frames[-1]] if len(frames) > 2 else frames
        texts = []
        for f in picks:
            out = self.pipe(Image.fromarray(f))
            text = out[0].get("generated_text", "").strip() if out else ""
            if text and text not in texts:
                texts.append(text)
        if not texts:
            raise ModelError("the local captioner returned no text")
        middle = texts[len(texts) // 2] if len(picks) > 2 else texts[0]
        return {CaptionLevel.SHORT.value: middle, CaptionLevel.DETAILED.value: "; then ".join(texts)}


# ----------------------------------------------------------------------------- a manifest


@dataclass
class CaptionReport:
    captioned: int
    kept: int  # clips that already had every level and were left alone
    failed: list[tuple[str, str]]  # (clip id, one-line reason)


def caption_manifest(
    manifest: str | os.PathLike,
    captioner: Captioner,
    num_frames: int = 3,
    overwrite: bool = False,
    on_clip: Callable[[ClipRecord, str | None], None] | None = None,
) -> CaptionReport:
    """Fill captions of every clip that lacks a level (all clips with `overwrite`); rewrite atomically."""
    from kino.data.prepare import read_clip

    path = Path(manifest)
    records = read_manifest(path)
    out, failed, done, kept = [], [], 0, 0
    for rec in records:
        if not overwrite and all(rec.captions.get(lv) for lv in LEVELS):
            out.append(rec)
            kept += 1
            if on_clip:
                on_clip(rec, None)
            continue
        error = None
        try:
            frames = pick_frames(read_clip(rec, path.parent), num_frames)
            caps = captioner.caption(frames, {"id": rec.id, "path": str(rec.source(path.parent)),
                                              "fps": rec.fps, "seconds": rec.seconds})
            rec = rec.with_captions(caps)
            done += 1
        except KinoError as e:
            error = str(e).splitlines()[0] if str(e) else type(e).__name__
            failed.append((rec.id, error))
        out.append(rec)
        if on_clip:
            on_clip(rec, error)
    write_manifest(path, out)
    side = read_sidecar(path)
    skipped = side.pop("skipped", [])
    side["caption_errors"] = [{"id": i, "reason": r} for i, r in failed]
    write_sidecar(path, side, [Skipped(**s) for s in skipped])
    return CaptionReport(done, kept, failed)


def pick_frames(frames: np.ndarray, n: int) -> list[np.ndarray]:
    """`n` frames spread evenly over (T, H, W, 3), first and last included."""
    idx = np.unique(np.linspace(0, len(frames) - 1, num=min(n, len(frames))).round().astype(int))
    return [frames[i] for i in idx]
