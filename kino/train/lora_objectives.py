"""Each family's flow-matching training objective, as its diffusers pipeline runs the transformer.

Letters: B batch, C latent channels, F latent frames, H/W latent height/width, N tokens, L text tokens,
D text width. Latents are the cache's normalized (B, C, F, H, W).

Both families are rectified flows with a velocity target, trained as diffusers' flow-matching training
scripts do (examples/dreambooth/train_dreambooth_lora_sd3.py and _flux.py; the same recipe in
finetrainers' LTX-Video and Wan specifications):

    u ~ logit-normal(mean, std) (training_utils.compute_density_for_timestep_sampling) or uniform
    sigma = shift * u / (1 + (shift - 1) * u)      the scheduler's shift (Wan: `shift` / `flow_shift`;
                                                    LTX: exp(mu), mu = calculate_shift(tokens) when the
                                                    scheduler shifts dynamically, as LTXPipeline does)
    x_t = (1 - sigma) x_0 + sigma noise,  target = noise - x_0,  timestep = 1000 sigma

The pipelines step x_{t-1} = x_t + (sigma_next - sigma) v with the transformer's v, so v = noise - x_0.
Condition frames (image-to-video, first + last, keyframes) are kept clean with timestep 0 on their
tokens and no loss, which is how both families condition: LTXConditionPipeline gives condition tokens
`min(t, (1 - mask) * 1000)`; Wan 2.2 TI2V (`expand_timesteps`) keeps the first latent frame clean with
a per-token timestep of 0 (WanImageToVideoPipeline). Wan 2.1 I2V / FLF2V and VACE noise every frame and
take the given frames as extra inputs instead, from the family cache (kino.data.family_cache): I2V / FLF2V
concatenate mask channels (wan_i2v_mask) and the condition latent to x_t and attend to the CLIP image
states; VACE adds control_hidden_states (the inactive / reactive latents and wan_vace_mask), as
WanImageToVideoPipeline and WanVACEPipeline (diffusers 0.42) build them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Noised:
    """One micro-batch on the flow path: x_t (B, C, F, H, W), target, sigma (B,), clean frames (B, F)."""

    x_t: torch.Tensor
    target: torch.Tensor
    sigma: torch.Tensor
    clean: torch.Tensor  # bool: latent frames given as conditions (no noise, no loss)


def shift_sigma(u: torch.Tensor, shift: float) -> torch.Tensor:
    """The flow-matching schedulers' time shift: sigma = s u / (1 + (s - 1) u)."""
    return shift * u / (1.0 + (shift - 1.0) * u)


def unshift_sigma(sigma: float, shift: float) -> float:
    """The inverse of shift_sigma: the u that gives `sigma`."""
    return sigma / (shift - (shift - 1.0) * sigma)


def ltx_dynamic_shift(tokens: int, scheduler: dict) -> float:
    """exp(mu) of LTXPipeline's calculate_shift: mu linear in the token count between two anchors."""
    base_len, max_len = scheduler.get("base_image_seq_len", 256), scheduler.get("max_image_seq_len", 4096)
    base, top = scheduler.get("base_shift", 0.5), scheduler.get("max_shift", 1.15)
    m = (top - base) / (max_len - base_len)
    return math.exp(tokens * m + base - m * base_len)


def scheduler_shift(scheduler: dict, tokens: int) -> float:
    """The shift a family's scheduler config applies (dynamic for LTX-Video's, fixed for Wan's)."""
    if scheduler.get("use_dynamic_shifting"):
        return ltx_dynamic_shift(tokens, scheduler)
    return float(scheduler.get("shift", scheduler.get("flow_shift", 1.0)) or 1.0)


def noised(x0: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor, clean: torch.Tensor) -> Noised:
    """x_t and the velocity target; condition frames (clean (B, F)) keep x_0."""
    s = sigma.view(-1, 1, 1, 1, 1).to(x0)
    x_t = (1.0 - s) * x0 + s * noise
    keep = clean[:, None, :, None, None].to(x0.device)  # (B, 1, F, 1, 1)
    x_t = torch.where(keep, x0, x_t)
    return Noised(x_t, noise - x0, sigma, clean)


def frame_weights(clean: torch.Tensor) -> torch.Tensor:
    """(B, F) 1.0 on frames that are trained, 0.0 on condition frames."""
    return (~clean).float()


# ----------------------------------------------------------------------------- LTX-Video


def ltx_coords(batch: int, frames: int, height: int, width: int, patch: tuple[int, int, int],
               temporal: int, spatial: int, fps: torch.Tensor, device) -> torch.Tensor:
    """The (B, 3, N) token coordinates LTXConditionPipeline gives the transformer: latent indices scaled
    to pixels (the first latent frame at 0, the others at 1 + 8k - 8 ... as the causal VAE counts), the
    frame axis in seconds (/ fps)."""
    from diffusers import LTXConditionPipeline as P

    ids = P._prepare_video_ids(batch, frames, height, width, patch_size=patch[1], patch_size_t=patch[0],
                               device=device)  # (B, 3, N) latent indices
    ids = P._scale_video_ids(ids, scale_factor=spatial, scale_factor_t=temporal, frame_index=0, device=device)
    coords = ids.float()
    coords[:, 0] = coords[:, 0] / fps.view(-1, 1).to(device)
    return coords


def ltx_loss(transformer, n: Noised, text: torch.Tensor, text_mask: torch.Tensor, fps: torch.Tensor,
             patch: tuple[int, int, int], temporal: int, spatial: int) -> torch.Tensor:
    """LTX-Video's velocity loss: packed tokens, per-token timesteps (0 on condition tokens), coordinates."""
    from diffusers import LTXConditionPipeline as P

    b, _, f, h, w = n.x_t.shape
    dev = n.x_t.device
    tokens = P._pack_latents(n.x_t, patch[1], patch[0])  # (B, N, C p_t p p)
    target = P._pack_latents(n.target, patch[1], patch[0])  # (B, N, C p_t p p)
    ids = P._prepare_video_ids(b, f, h, w, patch_size=patch[1], patch_size_t=patch[0], device=dev)  # (B, 3, N)
    cond = n.clean.float().to(dev).gather(1, ids[:, 0])  # (B, N): 1 on condition tokens, as the pipeline's mask
    timestep = (n.sigma.to(dev).view(-1, 1) * 1000.0) * (1.0 - cond)  # (B, N) = min(t, (1 - mask) * 1000)
    coords = ltx_coords(b, f, h, w, patch, temporal, spatial, fps, dev)
    pred = transformer(hidden_states=tokens.to(_dtype(transformer)), encoder_hidden_states=text.to(_dtype(transformer)),
                       timestep=timestep, encoder_attention_mask=text_mask.to(dev), video_coords=coords,
                       return_dict=False)[0]  # (B, N, C p_t p p)
    err = (pred.float() - target.float()).pow(2).mean(-1)  # (B, N)
    weight = 1.0 - cond  # (B, N)
    return (err * weight).sum() / weight.sum().clamp_min(1.0)


# ----------------------------------------------------------------------------- Wan


def wan_i2v_mask(batch: int, frames: int, height: int, width: int, temporal: int, last: bool) -> torch.Tensor:
    """The mask channels (B, temporal, F, H, W) of WanImageToVideoPipeline.prepare_latents: 1 on the given
    pixel frames (the first; the last too for FLF2V), the first frame's repeated `temporal` times, then
    folded per latent frame. `frames` is the pixel count, 1 + temporal (F - 1)."""
    m = torch.ones(batch, 1, frames, height, width)
    m[:, :, 1 : frames - 1 if last else frames] = 0
    first = m[:, :, 0:1].repeat_interleave(temporal, dim=2)  # (B, 1, temporal, H, W)
    m = torch.cat([first, m[:, :, 1:]], dim=2)  # (B, 1, temporal F, H, W)
    return m.view(batch, -1, temporal, height, width).transpose(1, 2)  # (B, temporal, F, H, W)


def wan_vace_mask(known: list[int], frames: int, latent_frames: int, height: int, width: int,
                  spatial: int) -> torch.Tensor:
    """WanVACEPipeline.prepare_masks for a pixel mask that is 0 on the `known` frames and 1 elsewhere:
    (spatial^2, F, H, W). The pipeline folds each spatial x spatial pixel patch into channels and resizes
    the frame axis with nearest-exact; a mask constant over each frame gives the same values from its
    (T,) frame vector resized alone (nearest-exact is separable and the spatial size is unchanged)."""
    m = torch.ones(frames)
    m[list(known)] = 0.0
    m = torch.nn.functional.interpolate(m.view(1, 1, frames, 1, 1), size=(latent_frames, 1, 1),
                                        mode="nearest-exact").view(1, latent_frames, 1, 1)  # (1, F, 1, 1)
    return m.expand(spatial * spatial, latent_frames, height, width)


def wan_loss(transformer, n: Noised, text: torch.Tensor, patch: tuple[int, int, int],
             channels: torch.Tensor | None = None, **inputs) -> torch.Tensor:
    """Wan's velocity loss: (B, C, F, H, W) in and out, a per-token timestep when frames are conditions.

    `channels` (B, C', F, H, W) are concatenated to x_t (I2V / FLF2V: mask + condition latents, as
    WanImageToVideoPipeline's `torch.cat([latents, condition], dim=1)`); `inputs` go to the transformer as
    they are (encoder_hidden_states_image; VACE's control_hidden_states)."""
    b, c, f, h, w = n.x_t.shape
    dev = n.x_t.device
    t = n.sigma.to(dev) * 1000.0  # (B,)
    if bool(n.clean.any()):  # WanImageToVideoPipeline with expand_timesteps: mask x t over the patch grid
        per_frame = (~n.clean).float().to(dev) * t.view(-1, 1)  # (B, F)
        grid = (h // patch[1]) * (w // patch[2])
        t = per_frame.repeat_interleave(grid, dim=1)  # (B, F x h/ph x w/pw), frame-major like the tokens
    dtype = _dtype(transformer)
    x = n.x_t if channels is None else torch.cat([n.x_t, channels.to(n.x_t)], dim=1)  # (B, C + C', F, H, W)
    extra = {k: v.to(dtype) if v.is_floating_point() else v for k, v in inputs.items()}
    pred = transformer(hidden_states=x.to(dtype), timestep=t, encoder_hidden_states=text.to(dtype),
                       return_dict=False, **extra)[0]  # (B, C, F, H, W)
    err = (pred.float() - n.target.float()).pow(2)  # (B, C, F, H, W)
    weight = frame_weights(n.clean).to(dev)[:, None, :, None, None]  # (B, 1, F, 1, 1)
    return (err * weight).sum() / (weight.sum() * c * h * w).clamp_min(1.0)


def _dtype(module) -> torch.dtype:
    """The compute dtype of a (maybe DDP-wrapped) transformer: its first floating parameter's."""
    inner = getattr(module, "module", module)
    compute = getattr(inner, "_kino_compute_dtype", None)
    if compute is not None:
        return compute
    return next(p.dtype for p in inner.parameters() if p.is_floating_point())
