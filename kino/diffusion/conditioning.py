"""Clean conditioning latents in chosen frames: training masks, and the conditioned, guided velocity.

Letters: B batch, C latent channels, T latent frames, H/W latent height/width.

One mechanism makes every mode (image-to-video, extension, loops, interpolation, connections, windows
of a long video): some latent frames hold clean latents of given pixels at t = 0, the rest start from
noise. The DiT already takes per-frame timesteps (B, T), so a condition frame is simply a frame whose
t is 0 (kino.models.dit). During training a share of the samples gets a random mask of condition frames
(first, last, head k, tail k, both ends, random keyframes); those frames are fed clean and left out of
the loss. During sampling the condition frames are set to their clean latents before the first step and
their velocity is zero, so every solver step leaves them bit-for-bit unchanged (x + dt * 0 = x): the
condition is re-imposed after every step by construction, for Euler, Heun and midpoint alike.

Condition guidance, separate from text guidance (InstructPix2Pix, Brooks et al. 2023; the dual scales of
Wan's image-to-video): with c_I the condition frames and c_T the text,

    v = v(no c_I, no c_T) + s_I [v(c_I, no c_T) - v(no c_I, no c_T)] + s_T [v(c_I, c_T) - v(c_I, no c_T)]

"no c_T" is the negative (by default empty) prompt; "no c_I" replaces the condition frames by fixed pure
noise at t = 1, which is what training shows the model when it drops a mask's conditions (`drop`).
With s_I = 1 the formula is ordinary classifier-free guidance with the condition in both branches
(two model calls per step); s_I != 1 costs a third.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import torch
from torch import Tensor

from kino.diffusion.samplers import Velocity
from kino.errors import InputError


class MaskKind(StrEnum):
    """Which latent frames a training sample holds clean."""

    FIRST = "first"  # image-to-video
    LAST = "last"  # an image as the last frame
    HEAD = "head"  # the first k frames: forward extension, the windows of a long video
    TAIL = "tail"  # the last k frames: backward extension
    ENDS = "ends"  # both ends: interpolation, loops, connecting two videos
    KEYFRAMES = "keyframes"  # random frames: interpolation between keyframes


@dataclass(frozen=True)
class ConditionConfig:
    """How training draws conditioning masks. Single images (T = 1) are never conditioned (text-to-image
    stays in the mix), and a (1 - prob) share of videos stays plain text-to-video."""

    prob: float = 0.5  # share of video samples that get a mask
    first: float = 0.3  # relative weights of the mask kinds
    last: float = 0.1
    head: float = 0.2
    tail: float = 0.1
    ends: float = 0.2
    keyframes: float = 0.1
    max_k: int = 2  # head/tail masks hold 1..max_k frames
    drop: float = 0.1  # share of masks whose frames become pure noise at t = 1 (condition guidance)

    def __post_init__(self) -> None:
        if not 0.0 <= self.prob <= 1.0 or not 0.0 <= self.drop < 1.0:
            raise InputError(f"conditioning prob must be in [0, 1] and drop in [0, 1), got {self.prob}, {self.drop}")
        w = self.weights()
        if min(w.values()) < 0 or (self.prob > 0 and sum(w.values()) <= 0):
            raise InputError(f"conditioning weights must be >= 0 with a positive sum, got {w}")
        if self.max_k < 1:
            raise InputError(f"max_k must be >= 1, got {self.max_k}")

    def weights(self) -> dict[MaskKind, float]:
        return {k: float(getattr(self, k.value)) for k in MaskKind}


@dataclass(frozen=True)
class ConditionMasks:
    """A batch's masks: which frames are conditions, and which samples had them dropped to noise."""

    frames: Tensor  # (B, T) bool: True for a condition frame
    dropped: Tensor  # (B,) bool: the condition frames are pure noise at t = 1 instead of clean
    kinds: tuple[str | None, ...]  # per sample, None for no mask

    def timesteps(self, t: Tensor) -> Tensor:
        """Per-sample t (B,) -> per-frame t (B, T): 0 on condition frames, 1 on dropped ones."""
        tf = t.float()[:, None].expand(self.frames.shape).clone()  # (B, T)
        on = self.frames.to(tf.device)
        tf[on] = 0.0
        tf[on & self.dropped.to(tf.device)[:, None]] = 1.0
        return tf

    def loss_weight(self) -> Tensor:
        """(B, T) float: condition frames (clean or dropped) are not trained on."""
        return (~self.frames).float()


def mask_for(kind: MaskKind, frames: int, generator: torch.Generator, max_k: int = 2) -> Tensor:
    """One mask (T,) bool of the given kind; at least one frame stays free to be generated."""
    m = torch.zeros(frames, dtype=torch.bool)
    if frames < 2:
        return m
    k = 1 + int(torch.randint(min(max_k, frames - 1), (1,), generator=generator))
    if kind == MaskKind.FIRST:
        m[0] = True
    elif kind == MaskKind.LAST:
        m[-1] = True
    elif kind == MaskKind.HEAD:
        m[:k] = True
    elif kind == MaskKind.TAIL:
        m[-k:] = True
    elif kind == MaskKind.ENDS:
        m[0] = True
        m[-1] = frames >= 3  # two frames: only the first (nothing would be left to generate)
    else:  # KEYFRAMES: 1 .. T-1 frames anywhere
        n = 1 + int(torch.randint(max(1, frames // 2), (1,), generator=generator))
        m[torch.randperm(frames, generator=generator)[:n]] = True
    return m


def sample_masks(batch: int, frames: int, cfg: ConditionConfig, generator: torch.Generator) -> ConditionMasks:
    """Draw a batch of masks for clips of `frames` latent frames (all draws from `generator`)."""
    w = cfg.weights()
    kinds_all = list(w)
    probs = torch.tensor([w[k] for k in kinds_all], dtype=torch.float64)
    out = torch.zeros(batch, frames, dtype=torch.bool)
    dropped = torch.zeros(batch, dtype=torch.bool)
    kinds: list[str | None] = []
    for b in range(batch):
        use = frames >= 2 and float(torch.rand((), generator=generator)) < cfg.prob
        if not use:
            kinds.append(None)
            continue
        kind = kinds_all[int(torch.multinomial(probs, 1, generator=generator))]
        out[b] = mask_for(kind, frames, generator, cfg.max_k)
        dropped[b] = float(torch.rand((), generator=generator)) < cfg.drop
        kinds.append(str(kind))
    return ConditionMasks(out, dropped, tuple(kinds))


# -- sampling ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Condition:
    """Clean latents for some frames of a latent (1, C, T, H, W) being sampled."""

    latent: Tensor  # (1, C, T, H, W): the clean latents where `mask`, anything elsewhere
    mask: Tensor  # (T,) bool

    def __post_init__(self) -> None:
        if self.latent.dim() != 5 or self.mask.shape != (self.latent.shape[2],):
            raise InputError(f"a condition needs a latent (1, C, T, H, W) and a mask (T,), got "
                             f"{tuple(self.latent.shape)} and {tuple(self.mask.shape)}")

    @property
    def frames(self) -> list[int]:
        return [int(i) for i in torch.nonzero(self.mask).flatten()]

    def impose(self, x: Tensor) -> Tensor:
        """x (B, C, T, H, W) with the condition frames replaced by the clean latents."""
        m = self.mask.to(x.device)[None, None, :, None, None]  # (1, 1, T, 1, 1)
        return torch.where(m, self.latent.to(device=x.device, dtype=x.dtype), x)


def conditioned(model, cond: dict, uncond: dict | None, guidance_scale: float, condition: Condition | None,
                condition_scale: float = 1.0, cond_noise: Tensor | None = None, min_t: float = 0.0) -> Velocity:
    """The velocity with condition frames and dual guidance (see the module docstring).

    cond / uncond: the model's text keyword arguments for the prompt and the negative prompt.
    cond_noise (1, C, T, H, W): the fixed noise the no-condition branch sees on condition frames.
    min_t: guidance only where t > min_t; below, one call with the prompt and the condition frames (guidance
    in a limited interval, Kynkaanniemi et al. 2024: at low noise it sharpens nothing the layout has not
    decided and only overshoots; on world-tiny v2 it is most of the flicker, docs/dit.md).
    The returned velocity is zero on condition frames, so a solver never moves them.
    """
    text_cfg = uncond is not None and guidance_scale != 1.0
    image_cfg = condition is not None and condition_scale != 1.0 and bool(condition.mask.any())
    if image_cfg and (uncond is None or cond_noise is None):
        raise InputError("condition guidance needs the negative prompt branch and the starting noise")
    # branches, in batch order: (c_I, c_T), then (c_I, no c_T) when guiding, then (no c_I, no c_T)
    texts = [cond] + ([uncond] if text_cfg or image_cfg else []) + ([uncond] if image_cfg else [])
    batched = texts[0]
    for extra in texts[1:]:
        batched = _cat_cond(batched, extra)
    n = len(texts)

    def velocity(x: Tensor, t: Tensor) -> Tensor:
        b, frames = x.shape[0], x.shape[2]
        tf = t.float().reshape(()).expand(b, frames).clone()  # (B, T)
        xs, ts = [x], [tf]
        if condition is not None:
            m = condition.mask.to(x.device)
            xs[0] = condition.impose(x)
            ts[0][:, m] = 0.0
        guide = n >= 2 and float(t.reshape(())) > min_t  # below min_t: the first branch alone
        if guide:
            xs.append(xs[0])
            ts.append(ts[0])
        if guide and image_cfg:
            m5 = condition.mask.to(x.device)[None, None, :, None, None]  # (1, 1, T, 1, 1)
            xs.append(torch.where(m5, cond_noise.to(device=x.device, dtype=x.dtype), x))
            t_free = tf.clone()
            t_free[:, condition.mask.to(x.device)] = 1.0
            ts.append(t_free)
        if not guide:
            parts = (model(xs[0], ts[0], **cond).float(),)
        else:
            parts = model(torch.cat(xs), torch.cat(ts), **batched).float().chunk(n)  # n x (B, C, T, H, W)
        if len(parts) == 1:
            out = parts[0]
        elif image_cfg:
            v_full, v_img, v_none = parts
            out = v_none + condition_scale * (v_img - v_none) + guidance_scale * (v_full - v_img)
        else:
            v_full, v_img = parts
            out = v_img + guidance_scale * (v_full - v_img)
        if condition is not None:  # condition frames do not move
            out = out.masked_fill(condition.mask.to(x.device)[None, None, :, None, None], 0.0)
        return out

    return velocity


def _cat_cond(cond: dict, uncond: dict) -> dict:
    """Join cond and uncond along the batch, padding text-like (B, L, ...) tensors to one length."""
    out = {}
    for key, a in cond.items():
        b = uncond[key]
        if a is None:
            out[key] = None
            continue
        if a.dim() >= 2 and a.shape[1] != b.shape[1]:
            n = max(a.shape[1], b.shape[1])
            a, b = _pad_len(a, n), _pad_len(b, n)
        out[key] = torch.cat([a, b])
    return out


def _pad_len(x: Tensor, n: int) -> Tensor:
    pad = torch.zeros((x.shape[0], n - x.shape[1], *x.shape[2:]), dtype=x.dtype, device=x.device)
    return torch.cat([x, pad], dim=1)  # (B, n, ...): padded tokens are masked (bool mask pads with False)
