"""An invisible watermark in every frame: a 48-bit payload ("kino" magic + a 32-bit id) and its detector.

Why our own and not `invisible-watermark` (the one Stable Diffusion uses): that library needs OpenCV
and its DWT-DCT method works on frames of 256x256 and up, while kino's default outputs are 64x64.

How it works (spread spectrum in the whole-frame DCT; Cox et al. 1997, "Secure spread spectrum
watermarking for multimedia", with the improved spread spectrum (ISS) embedding of Malvar and
Florencio 2003, "Improved spread spectrum: a new modulation technique for robust watermarking"):
- the luma of a frame is described by the amplitudes of the 2-D cosines cos(pi u (x+0.5)/W) cos(pi v (y+0.5)/H)
  for a band of low-to-mid frequencies (u, v); each bit of the payload owns a keyed, pseudo-random
  set of those cosines (its chips) and a keyed +-1 sign per chip;
- embedding adds, per bit, just enough of its signed chip pattern that the projection of the frame
  on that pattern reaches a margin (ISS: the frame's own content no longer hides the bit);
- the cosines are defined in normalized coordinates, so the watermark survives resizing; cropping
  is undone by a search over the sub-window of the original frame that the crop kept;
- a video's frames are averaged before detection (the mark is the same in every frame; moving
  content averages out), so a video votes with all its frames.

A detection reports a z-score of the known magic bits: under "no watermark" it is about N(0, 1),
so `z >= Z_THRESHOLD` is a decision with a tiny false-alarm rate even after the crop search.

The key. The chip layout and signs come from a secret key made once per install (32 random bytes in
$KINO_CONFIG_DIR/watermark.key, beside the c2pa/ signing folder; $KINO_WATERMARK_KEY names another
file, e.g. one shared by several servers). Without the key the chips are unknown: nobody else can
embed this install's mark into a video, and nobody else can detect it (the detector only answers
for the key it is given). What the mark does and does not prove is in docs/safety.md.

The id. The 32-bit id is derived from the request (an HMAC of the generation record under the key),
not drawn at random, so the same request with the same seed gives the same frames in every run.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from kino.errors import InputError

MAGIC = 0x6B69  # "ki": 16 known bits that say "kino made this"
MAGIC_BITS = 16
ID_BITS = 32
PAYLOAD_BITS = MAGIC_BITS + ID_BITS
KEY_BYTES = 32  # the per-install key (see the module docstring)
KEY_FILE = "watermark.key"
SCHEME = "kino-dct-ss-v2"  # v2: chips from a per-install key (v1 used a public constant)
# u, v in [4, 28): above most of a picture's energy, below what H.264 and a 0.5x resize remove
BAND = (4, 28)
MARGIN = 0.2  # least projection per bit, in luma levels (0..255): PSNR about 40 dB on smooth frames
MARGIN_MAX = 0.4  # most projection per bit: busy frames get a stronger mark, up to here
Z_TARGET = 10.0  # the per-frame z-score the margin aims for
CHUNK = 16  # frames embedded at a time
Z_THRESHOLD = 5.0  # the largest z of unmarked frames over the whole crop search was ~3.5
CLIP = 3.0  # chip amplitudes beyond CLIP x their median magnitude are clipped before correlation
CROP_SCALES = (1.0, 0.95, 0.9, 0.85, 0.8)  # fraction of the original side a crop may have kept
CROP_STEPS = 5  # offsets tried per scale and axis


@dataclass(frozen=True)
class WatermarkResult:
    """What the detector found: present or not, the id when present, and the evidence."""

    present: bool
    watermark_id: str | None  # 8 hex digits
    z: float  # z-score of the magic bits; about N(0, 1) for unmarked frames
    bits: tuple[int, ...]  # all 48 decoded bits (magic first)
    crop: tuple[float, float, float, float]  # (x0, y0, width, height) of the kept window, normalized


# ----------------------------------------------------------------------------- payload


def new_watermark_id(rng: np.random.Generator | None = None) -> str:
    """A random 32-bit id as 8 hex digits."""
    rng = rng or np.random.default_rng()
    return f"{int(rng.integers(0, 2**32)):08x}"


def derived_watermark_id(key: bytes, record: dict) -> str:
    """The id of an output: HMAC-SHA256 under the key of its generation record (canonical JSON), 8 hex
    digits. The same request and seed give the same id; without the key the id says nothing about them."""
    text = json.dumps(record, sort_keys=True, separators=(",", ":"), default=str)
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()[:8]


# ----------------------------------------------------------------------------- the key


def key_path(folder: str | os.PathLike | None = None) -> Path:
    """$KINO_WATERMARK_KEY, else watermark.key in kino's config folder (`folder`, $KINO_CONFIG_DIR, ~/.config/kino)."""
    from kino.safety.provenance import config_dir

    env = os.environ.get("KINO_WATERMARK_KEY")
    return Path(env) if env and folder is None else config_dir(folder) / KEY_FILE


def load_key(folder: str | os.PathLike | None = None, create: bool = True) -> bytes | None:
    """This install's watermark key, made on first use (None if it does not exist and `create` is False).

    Creation is atomic against other processes: the key is written to a temporary file and hard-linked
    to its name, which fails if another process's key got there first; then that one is read.
    """
    path = key_path(folder)
    if not path.is_file():
        if not create:
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(KEY_BYTES) + "\n")
            os.chmod(tmp, 0o600)
            try:
                os.link(tmp, path)  # atomic create-if-absent
            except FileExistsError:
                pass  # another process made it first: use theirs
        finally:
            os.unlink(tmp)
    try:
        key = bytes.fromhex(path.read_text().strip())
    except (ValueError, OSError):
        key = b""
    if len(key) != KEY_BYTES:
        raise InputError(f"watermark key {path} is not {KEY_BYTES} bytes of hex; delete it to make a new one "
                         "(marks made with the old key are then no longer detected)")
    return key


def payload_bits(watermark_id: str) -> np.ndarray:
    """The 48 payload bits (0/1) for an id of 8 hex digits: magic first, then the id."""
    try:
        value = int(watermark_id, 16)
    except ValueError:
        value = -1
    if len(watermark_id) != 8 or not 0 <= value < 2**32:
        raise InputError(f"watermark id {watermark_id!r} is not 8 hex digits; e.g. '0a1b2c3d'")
    word = (MAGIC << ID_BITS) | value
    return np.array([(word >> (PAYLOAD_BITS - 1 - i)) & 1 for i in range(PAYLOAD_BITS)], dtype=np.int64)


def bits_to_id(bits: np.ndarray) -> str:
    value = 0
    for b in bits[MAGIC_BITS:]:
        value = (value << 1) | int(b)
    return f"{value:08x}"


@lru_cache(maxsize=8)
def _layout(key: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Chip layout: frequencies (u, v), the bit each chip carries and its sign, from the key."""
    if not isinstance(key, bytes) or len(key) < 16:
        raise InputError("a watermark key is at least 16 bytes (see kino.safety.watermark.load_key)")
    lo, hi = BAND
    uv = np.array([(u, v) for v in range(lo, hi) for u in range(lo, hi)], dtype=np.int64)  # (K, 2)
    seed = int.from_bytes(hashlib.sha256(SCHEME.encode() + key).digest(), "big")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(uv))
    uv = uv[order]
    bit_of = np.arange(len(uv)) % PAYLOAD_BITS  # balanced: every bit gets K / 48 chips
    sign = rng.choice(np.array([-1.0, 1.0]), size=len(uv))
    return uv[:, 0], uv[:, 1], bit_of, sign


def _basis(n: int, freqs: np.ndarray, start: float = 0.0, width: float = 1.0) -> np.ndarray:
    """Cosines cos(pi f t) sampled at the n pixel centres of the window [start, start + width] of [0, 1].

    Returns (F, n): one row per frequency; the window describes which part of the original frame
    the n pixels cover (the whole frame unless it was cropped).
    """
    t = start + width * (np.arange(n) + 0.5) / n  # (n,) normalized coordinates in the original frame
    return np.cos(np.pi * freqs[:, None].astype(np.float64) * t[None, :])  # (F, n)


def _luma(frames: np.ndarray) -> np.ndarray:
    """BT.601 luma of uint8 RGB frames (T, H, W, 3) -> (T, H, W) float64."""
    f = frames.astype(np.float64)
    return 0.299 * f[..., 0] + 0.587 * f[..., 1] + 0.114 * f[..., 2]  # (T, H, W)


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]  # (1, H, W, 3)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise InputError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {tuple(frames.shape)}")
    if min(frames.shape[1:3]) < 16:
        raise InputError(
            f"frames of {frames.shape[2]}x{frames.shape[1]} are too small to watermark; use >= 16x16"
        )
    return frames


# ----------------------------------------------------------------------------- embedding


def _clip(amp: np.ndarray) -> np.ndarray:
    """Robust chip amplitudes: the picture's strong edges put large, heavy-tailed amplitudes on a
    few chips; clipping them at CLIP x the median magnitude keeps the null N(0, 1) and most of the mark."""
    c = CLIP * np.median(np.abs(amp)) + 1e-9
    return np.clip(amp, -c, c)


def _adaptive_margin(amp: np.ndarray, bit_of: np.ndarray, counts: np.ndarray) -> float:
    """Margin at which the magic bits' z-score reaches Z_TARGET: z = N m / sqrt(E) for N magic chips.

    E is the clipped energy the detector will see, which depends on the margin itself (the mark
    raises the median the clip is set from), so a few fixed-point steps find it.
    """
    magic = bit_of < MAGIC_BITS
    n = counts[:MAGIC_BITS].sum()
    med = float(np.median(np.abs(amp)))
    m = MARGIN
    for _ in range(4):
        c = CLIP * np.hypot(med, m)
        energy = float((np.clip(amp[magic], -c, c) ** 2).sum()) + n * m * m
        m = float(np.clip(Z_TARGET * np.sqrt(energy) / n, MARGIN, MARGIN_MAX))
    return m


def embed(frames: np.ndarray, watermark_id: str, key: bytes, margin: float | None = None) -> np.ndarray:
    """Watermark every frame (T, H, W, 3) uint8 with the payload of `watermark_id` under `key`; returns new frames.

    The margin (strength) adapts per frame between MARGIN and MARGIN_MAX so that busy frames,
    whose own content is louder in the watermark's band, still reach Z_TARGET; pass `margin` to fix it.
    """
    frames = _check_frames(frames)
    _, h, w, _ = frames.shape
    u, v, bit_of, sign = _layout(key)
    want = 2.0 * payload_bits(watermark_id) - 1.0  # (48,) in {-1, +1}
    bx, by = _basis(w, u), _basis(h, v)  # (K, W), (K, H)
    out = np.empty_like(frames)
    for t0 in range(0, len(frames), CHUNK):  # in chunks: float64 copies of a long HD video would not fit
        out[t0 : t0 + CHUNK] = _embed_chunk(frames[t0 : t0 + CHUNK], want, bx, by, bit_of, sign, margin)
    return out


def _embed_chunk(
    frames: np.ndarray, want: np.ndarray, bx: np.ndarray, by: np.ndarray, bit_of: np.ndarray, sign: np.ndarray,
    margin: float | None,
) -> np.ndarray:
    """embed() on frames (T, H, W, 3) uint8 with the payload signs `want` (48,), bases (K, W), (K, H)
    and the key's chip bits and signs (K,)."""
    _, h, w, _ = frames.shape
    counts = np.bincount(bit_of, minlength=PAYLOAD_BITS).astype(np.float64)  # (48,)
    onehot = np.eye(PAYLOAD_BITS)[bit_of]  # (K, 48)
    # Amplitude of chip k in a luma image Y: 4/(HW) sum_yx Y by_k(y) bx_k(x) (a DCT coefficient).
    y = _luma(frames)  # (T, H, W)
    amp = (4.0 / (h * w)) * np.einsum("tkw,kw->tk", by @ y, bx)  # (K, H) @ (T, H, W) -> (T, K, W) -> (T, K)
    proj = (amp * sign) @ onehot / counts  # (T, 48) mean signed chip amplitude per bit
    if margin is None:
        m = np.array([_adaptive_margin(a, bit_of, counts) for a in amp])[:, None]  # (T, 1)
    else:
        m = np.full((len(frames), 1), float(margin))  # (T, 1)
    # ISS: push each bit's projection to the margin on its side; a bit already there gets nothing.
    push = np.maximum(0.0, m - want * proj) * want  # (T, 48)
    gain = push[:, bit_of] * sign  # (T, K) amplitude added to each chip
    delta = np.einsum("kh,tkw->thw", by, gain[:, :, None] * bx)  # (T, H, W) luma change
    marked = frames.astype(np.float64) + delta[..., None]  # same change on R, G, B moves luma by delta
    return np.clip(np.rint(marked), 0, 255).astype(np.uint8)  # (T, H, W, 3)


# ----------------------------------------------------------------------------- detection


def _windows(scales=CROP_SCALES, steps=CROP_STEPS) -> list[tuple[float, float]]:
    """(start, width) windows of the original axis a crop may have kept, the full frame first."""
    out = [(0.0, 1.0)]
    for s in scales:
        if s >= 1.0:
            continue
        for o in np.linspace(0.0, 1.0 - s, steps):
            out.append((float(o), float(s)))
    return out


def _near(start: float, width: float, step: float = 0.0125) -> list[tuple[float, float]]:
    """Windows within +-2 fine steps of (start, width): half a coarse step each way."""
    out = []
    for i in range(-2, 3):
        for j in range(-2, 3):
            s, wd = start + i * step, width + j * step
            if s >= 0 and 0 < wd and s + wd <= 1.0 + 1e-9:
                out.append((s, wd))
    return out


def _search(y: np.ndarray, ywins: list, xwins: list, best, key: bytes):
    """Best (z, projections, crop window) over vertical x horizontal windows for a luma image (H, W)."""
    h, w = y.shape
    u, v, bit_of, sign = _layout(key)
    bx = np.stack([_basis(w, u, s, wd) for s, wd in xwins])  # (X, K, W)
    by = np.stack([_basis(h, v, s, wd) for s, wd in ywins])  # (Y, K, H)
    rows = np.einsum("ykh,hw->ykw", by, y)  # (Y, K, W): y projected on each chip's vertical cosine
    amp = (4.0 / (h * w)) * np.einsum("ykw,xkw->yxk", rows, bx)  # (Y, X, K) chip amplitudes per window
    c = CLIP * np.median(np.abs(amp), axis=-1, keepdims=True) + 1e-9  # (Y, X, 1)
    amp = np.clip(amp, -c, c)  # robust correlation, as in _clip
    onehot = np.eye(PAYLOAD_BITS)[bit_of]  # (K, 48)
    proj = (amp * sign) @ onehot  # (Y, X, 48)
    energy = (amp * amp) @ onehot  # (Y, X, 48)
    magic = 2.0 * payload_bits("00000000")[:MAGIC_BITS] - 1.0  # (16,)
    z = (proj[..., :MAGIC_BITS] * magic).sum(-1) / np.sqrt(energy[..., :MAGIC_BITS].sum(-1) + 1e-12)  # (Y, X)
    i, j = np.unravel_index(int(np.argmax(z)), z.shape)
    if best is None or z[i, j] > best[0]:
        best = (float(z[i, j]), proj[i, j], (xwins[j][0], ywins[i][0], xwins[j][1], ywins[i][1]))
    return best


def detect(frames: np.ndarray, key: bytes, search_crops: bool = True) -> WatermarkResult:
    """Look for the watermark of `key` in frames (T, H, W, 3) uint8 (or one frame); all frames vote."""
    frames = _check_frames(frames)
    y = _luma(frames).mean(axis=0)  # (H, W): the mark is the same in every frame, content is not
    y = y - y.mean()
    if search_crops:
        best = _search(y, _windows(), _windows(), None, key)
        # Refine around the coarse answer: the high chips need the window to within ~1% of the side.
        xs, ys, xw, yw = best[2]
        best = _search(y, _near(ys, yw), _near(xs, xw), best, key)
    else:
        best = _search(y, [(0.0, 1.0)], [(0.0, 1.0)], None, key)
    z, proj, crop = best
    bits = (proj > 0).astype(np.int64)  # (48,)
    magic_ok = int((bits[:MAGIC_BITS] == payload_bits("00000000")[:MAGIC_BITS]).sum())
    present = z >= Z_THRESHOLD and magic_ok >= MAGIC_BITS - 2
    return WatermarkResult(
        present=present,
        watermark_id=bits_to_id(bits) if present else None,
        z=z,
        bits=tuple(int(b) for b in bits),
        crop=crop,
    )


def bit_accuracy(result: WatermarkResult, watermark_id: str) -> float:
    """Fraction of the 48 payload bits the detector got right."""
    return float((np.array(result.bits) == payload_bits(watermark_id)).mean())


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB between two uint8 arrays of the same shape (kino.eval.continuity's)."""
    from kino.eval.continuity import psnr as _psnr

    return _psnr(a, b)
