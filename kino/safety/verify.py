"""Check a file's provenance: its C2PA manifest, signature, hash binding, signer trust and watermark.

Outcomes and the exit codes of `kino verify` (distinct from KinoError's 1-6 and 70):
    0   OK            valid credentials made by kino (the signature and hash binding hold)
    20  NO_CREDENTIALS  no C2PA manifest in the file (stripped, or never signed)
    21  INVALID       a manifest is there but does not validate: tampered, or a broken signature
    22  NOT_KINO      valid credentials, but made by another generator
Trust is reported, not required: the local chain that kino makes is untrusted unless the user
lists its root (or their own CA) as a trust anchor, so a valid kino file signed with it exits 0.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
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
    watermark: WatermarkResult | None  # None when the file could not be decoded
    claimed_watermark: str | None  # the id the manifest says was embedded

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


def detect_watermark(path: Path, max_frames: int = 64) -> WatermarkResult | None:
    """Run the watermark detector over up to `max_frames` frames of a file (None if undecodable)."""
    from kino.io import read_video
    from kino.safety.watermark import detect

    try:
        video = read_video(path, max_frames=max_frames)
    except MediaError:
        return None
    return detect(video.frames)


def verify_file(
    path: str | os.PathLike, config: SafetyConfig | None = None, watermark: bool = True
) -> VerifyReport:
    """Verify a file's content credentials and look for kino's watermark."""
    p = Path(path)
    if not p.is_file():
        raise MediaError(f"{p}: no such file")
    m = read_manifest(p, _trust_anchors(config))
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
    wm = detect_watermark(p) if watermark else None
    return VerifyReport(p, outcome, m, kino, wm, claimed)
