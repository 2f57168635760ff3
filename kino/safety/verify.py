"""Check a file's provenance: its C2PA manifest, signature, hash binding, signer trust and watermark.

Outcomes and the exit codes of `kino verify` (distinct from KinoError's 1-6 and 70):
    0   OK            valid credentials made by kino (the signature and hash binding hold)
    20  NO_CREDENTIALS  no C2PA manifest in the file (stripped, or never signed)
    21  INVALID       a manifest is there but does not validate: tampered, or a broken signature
    22  NOT_KINO      valid credentials, but made by another generator
Trust is reported, not required: the local chain that kino makes is untrusted unless the user
lists its root (or their own CA) as a trust anchor, so a valid kino file signed with it exits 0.
A file that is not an MP4 or PNG at all (a text file, an empty .mp4) is unreadable: MediaError, exit 3.

What the C2PA hash binding leaves out. An MP4's hash (c2pa.hash.bmff.v2) excludes top-level `free`
and `skip` boxes by default, so bytes appended in such a box, or after the last box, left the
credentials "valid". kino's own check walks the top-level boxes and calls the file tampered
(INVALID) when a free/skip box carries anything but zeros, when one follows the last media box, or
when bytes follow the last box. PNGs need no such walk: their hash covers every byte but the
manifest chunk.

The watermark is looked for with this install's key (kino/safety/watermark.py): a file made by
another install (another key) reads "not found", which says nothing against it.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path

from kino.errors import MediaError
from kino.safety.policy import SafetyConfig
from kino.safety.provenance import (
    CREATED,
    GENERATION_LABEL,
    TRAINED_ALGORITHMIC_MEDIA,
    ManifestInfo,
    read_manifest,
)
from kino.safety.watermark import WatermarkResult


class Outcome(Enum):
    """What verification concluded, with the exit code of `kino verify`."""

    OK = (0, "valid content credentials from kino")
    NO_CREDENTIALS = (20, "no content credentials")
    INVALID = (
        21,
        "content credentials are invalid: the file was changed after signing, or the signature is bad",
    )
    NOT_KINO = (22, "valid content credentials, but not made by kino")

    @property
    def exit_code(self) -> int:
        return self.value[0]

    @property
    def text(self) -> str:
        return self.value[1]


@dataclass(frozen=True)
class VerifyReport:
    """Everything `kino verify` prints."""

    path: Path
    outcome: Outcome
    manifest: ManifestInfo
    made_by_kino: bool
    watermark: WatermarkResult | None  # None when not looked for, the file could not be decoded, or no key
    claimed_watermark: str | None  # the id the manifest says was embedded
    watermark_key: bool = True  # whether this install has a watermark key to look with

    def summary(self) -> dict:
        """A readable digest of the manifest and the checks."""
        m = self.manifest
        active = m.active or {}
        gen = m.assertion(GENERATION_LABEL) or {}
        wm = self.watermark
        return {
            "file": str(self.path),
            "outcome": self.outcome.name.lower(),
            "explanation": self.outcome.text,
            "credentials": m.present,
            "validation_state": m.state,
            "signature_and_hash_valid": m.valid,
            "failures": list(m.failures),
            "signer_trusted": m.trusted,
            "signer": (active.get("signature_info") or {}).get("common_name"),
            "issuer": (active.get("signature_info") or {}).get("issuer"),
            "claim_generator": active.get("claim_generator_info"),
            "made_by_kino": self.made_by_kino,
            "model": gen.get("model"),
            "mode": gen.get("mode"),
            "settings": gen.get("settings"),
            "frame_review": gen.get("frame_review"),
            "prompt": gen.get("prompt"),
            "watermark_key": self.watermark_key,
            "watermark_present": None if wm is None else wm.present,
            "watermark_id": None if wm is None else wm.watermark_id,
            "watermark_z": None if wm is None else round(wm.z, 2),
            "watermark_matches_manifest": (
                None
                if wm is None or self.claimed_watermark is None
                else wm.watermark_id == self.claimed_watermark
            ),
        }


def _is_kino(m: ManifestInfo) -> bool:
    """Kino's manifest: generator "kino", a c2pa.created action by a trained model, the generation assertion."""
    active = m.active or {}
    gens = active.get("claim_generator_info") or []
    if not any(isinstance(g, dict) and g.get("name") == "kino" for g in gens):
        return False
    actions = (m.assertion("c2pa.actions.v2") or {}).get("actions", [])
    created = any(
        a.get("action") == CREATED and a.get("digitalSourceType") == TRAINED_ALGORITHMIC_MEDIA
        for a in actions
    )
    return created and m.assertion(GENERATION_LABEL) is not None


def _trust_anchors(config: SafetyConfig | None) -> tuple[bytes, ...]:
    paths = list(config.trust) if config else []
    env = os.environ.get("KINO_C2PA_TRUST")
    if env:
        paths += env.split(os.pathsep)
    out = []
    for p in paths:
        if not Path(p).is_file():
            raise MediaError(f"trust anchor file {p} does not exist")
        out.append(Path(p).read_bytes())
    return tuple(out)


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PADDING_BOXES = (b"free", b"skip")


def sniff(path: Path) -> str:
    """"png" or "mp4" from the file's first bytes; MediaError (exit 3) for anything else."""
    with open(path, "rb") as f:
        head = f.read(12)
    if not head:
        raise MediaError(f"{path}: the file is empty; kino verifies MP4 and PNG files")
    if head.startswith(PNG_SIGNATURE):
        return "png"
    if len(head) >= 8 and head[4:8] == b"ftyp":
        return "mp4"
    raise MediaError(f"{path}: not an MP4 or PNG file (it does not start like one); kino verifies MP4 and PNG files")


def unbound_data(path: Path) -> list[str]:
    """Problems with an MP4's top level that the C2PA hash does not see: non-zero free/skip boxes,
    free/skip boxes after the last media box, bytes after the last box. Empty when there are none."""
    size = path.stat().st_size
    boxes: list[tuple[bytes, int, int]] = []  # (type, start, length)
    problems = []
    with open(path, "rb") as f:
        pos = 0
        while pos < size:
            f.seek(pos)
            head = f.read(16)
            if len(head) < 8:
                problems.append(f"{size - pos} stray bytes after the last box")
                break
            n, kind = struct.unpack(">I4s", head[:8])
            if n == 1 and len(head) == 16:
                n = struct.unpack(">Q", head[8:16])[0]  # 64-bit size
            elif n == 0:
                n = size - pos  # the box runs to the end of the file
            if n < 8 or pos + n > size:
                problems.append(f"{size - pos} bytes after the last box that are not a box")
                break
            boxes.append((kind, pos, n))
            pos += n
        media = [i for i, (kind, _, _) in enumerate(boxes) if kind not in PADDING_BOXES]
        last = media[-1] if media else -1
        for i, (kind, start, n) in enumerate(boxes):
            if kind not in PADDING_BOXES:
                continue
            name = kind.decode()
            if i > last:
                problems.append(f"a {name} box of {n} bytes appended after the last box")
                continue
            f.seek(start + 8)
            if f.read(n - 8).strip(b"\0"):
                problems.append(f"a {name} box of {n} bytes at offset {start} holds data")
    return problems


def detect_watermark(path: Path, key: bytes | None, max_frames: int = 64) -> WatermarkResult | None:
    """Run the watermark detector for `key` over up to `max_frames` frames of a file (None if undecodable
    or there is no key)."""
    from kino.io import read_video
    from kino.safety.watermark import detect

    if key is None:
        return None
    try:
        video = read_video(path, max_frames=max_frames)
    except MediaError:
        return None
    return detect(video.frames, key)


def verify_file(
    path: str | os.PathLike, config: SafetyConfig | None = None, watermark: bool = True
) -> VerifyReport:
    """Verify a file's content credentials and look for kino's watermark."""
    from kino.safety.watermark import load_key

    p = Path(path)
    if not p.is_file():
        raise MediaError(f"{p}: no such file")
    kind = sniff(p)
    problems = unbound_data(p) if kind == "mp4" else []
    m = _read(p, _trust_anchors(config), problems)
    kino = m.valid and _is_kino(m)
    if not m.present:
        outcome = Outcome.NO_CREDENTIALS
    elif not m.valid:
        outcome = Outcome.INVALID
    elif not kino:
        outcome = Outcome.NOT_KINO
    else:
        outcome = Outcome.OK
    gen = m.assertion(GENERATION_LABEL) or {}
    claimed = gen.get("watermark", {}).get("id") if isinstance(gen.get("watermark"), dict) else None
    key = load_key(config.config_dir if config else None, create=False) if watermark else None
    wm = detect_watermark(p, key) if watermark else None
    return VerifyReport(p, outcome, m, kino, wm, claimed, key is not None or not watermark)


def _read(path: Path, trust: tuple[bytes, ...], problems: list[str]) -> ManifestInfo:
    """The manifest, marked tampered when the file holds data its hash binding does not cover."""
    if not problems:
        return read_manifest(path, trust)
    try:
        m = read_manifest(path, trust)
    except MediaError:  # trailing garbage can stop the parser: read the boxes before it
        m = _read_prefix(path, trust)
    if not m.present:
        return m
    return replace(m, state="Invalid", failures=(*m.failures, *(f"kino.unboundData: {p}" for p in problems)))


def _read_prefix(path: Path, trust: tuple[bytes, ...]) -> ManifestInfo:
    """read_manifest of the file's well-formed top-level boxes (the file cut before its stray bytes)."""
    import tempfile

    size, pos = path.stat().st_size, 0
    with open(path, "rb") as f:
        while pos + 8 <= size:
            f.seek(pos)
            n = struct.unpack(">I", f.read(4))[0]
            if n < 8 or pos + n > size:
                break
            pos += n
        f.seek(0)
        data = f.read(pos)
    with tempfile.TemporaryDirectory() as tmp:
        cut = Path(tmp) / path.name
        cut.write_bytes(data)
        return read_manifest(cut, trust)
