"""The diffusion transformer over spacetime patches of the video latent.

Letters: B batch, C latent channels, T/H/W latent frames/height/width, N tokens, D model width,
L text tokens, G groups of tokens sharing one noise level, nh heads, hd head width.

Reads top to bottom as in DiT (facebookresearch): the patchifier, the embedders, the block, the final
layer, the model, then the presets. The block follows Wan 2.1 (Alibaba): a shared time MLP whose output
each block offsets with its own learned table (adaLN, zero-initialised as in DiT), full 3D
self-attention with QK RMSNorm and 3D rotary positions, cross-attention to the text tokens, a GELU MLP.

Every latent frame carries its own timestep: t is (B,) or (B, T), and the adaLN modulation is applied per
group of tokens that share a frame, so conditioning frames can be clean (t = 0) while the rest are noised.
A list of latents of different sizes runs as one packed sequence with block-diagonal attention
(NaViT's "patch n' pack"); a plain batch runs through SDPA without a mask.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from kino.errors import InputError, ModelError
from kino.models.presets import DiTPreset  # noqa: F401 (re-exported: the CLI choices)
from kino.models.rope import RotaryEmbedding3D, apply_rope, grid_coords  # noqa: F401 (re-exported)


@dataclass(frozen=True)
class DiTConfig:
    """Dimensions of the DiT; the defaults are the tiny CPU model (`world-tiny`)."""

    in_channels: int = 16
    out_channels: int = 16
    patch_size: tuple[int, int, int] = (1, 2, 2)  # (t, h, w) in latent units
    dim: int = 192
    depth: int = 8
    num_heads: int = 4
    ffn_dim: int = 768
    text_dim: int = 384  # width of the text encoder's hidden states (MiniLM: 384)
    freq_dim: int = 256  # sinusoidal timestep features
    rope_theta: float = 10000.0
    eps: float = 1e-6
    # What the network's last layer predicts: "velocity" (e - x0, v1), or "sample" (the clean x0, turned
    # into the velocity (x_t - x0) / t it returns, t clamped at `min_t`). A token wider than the model
    # (world-tiny v2: 24 x 16 = 384 values through dim 192) cannot carry the noise half of a velocity;
    # the clean latent lies on a low-dimensional manifold it can (Li and He 2025, "Back to Basics: Let
    # Denoising Generative Models Denoise", JiT: x-prediction with the velocity loss).
    prediction: str = "velocity"
    min_t: float = 0.05
    # A pooled text vector into adaLN beside cross-attention (SD3 and Flux add a pooled CLIP vector to the
    # timestep embedding): the masked mean of the text states through an MLP whose last layer starts at
    # zero, so a model warm-started without it begins unchanged.
    pooled_text: bool = False
    # A convolutional head over the unpatchified output (0: none, DiT's linear output alone). A linear map
    # per token makes each 16x16-pixel token decide its patch alone, so objects come out as token-sized
    # squares; U-ViT (Bao et al. 2023) found a 3x3 convolution after the linear unpatchify improves samples.
    # Here each latent cell also gets `out_conv` feature channels from its token, and two 3x3x3 convolutions
    # over (prediction, features) add a residual that crosses token and latent-frame boundaries; the last
    # convolution starts at zero, so a model warm-started without the head begins unchanged.
    out_conv: int = 0

    def __post_init__(self) -> None:
        if self.prediction not in ("velocity", "sample"):
            raise InputError(f"DiTConfig.prediction must be velocity or sample, got {self.prediction!r}")
        if not 0.0 < self.min_t < 1.0:
            raise InputError(f"DiTConfig.min_t must be in (0, 1), got {self.min_t}")
        object.__setattr__(self, "patch_size", tuple(int(p) for p in self.patch_size))
        if len(self.patch_size) != 3 or min(self.patch_size) < 1:
            raise InputError(f"patch_size must be three positive ints (t, h, w), got {self.patch_size}")
        if self.out_conv < 0:
            raise InputError(f"DiTConfig.out_conv must be 0 (no head) or a positive width, got {self.out_conv}")
        for name in ("in_channels", "out_channels", "dim", "depth", "num_heads", "ffn_dim", "text_dim"):
            if getattr(self, name) < 1:
                raise InputError(f"DiTConfig.{name} must be positive, got {getattr(self, name)}")
        if self.dim % self.num_heads:
            raise InputError(f"dim {self.dim} is not divisible by num_heads {self.num_heads}")
        if self.head_dim % 2 or self.head_dim < 6:
            raise InputError(f"head width {self.head_dim} must be even and >= 6 for 3D rotary positions")
        if self.freq_dim % 2:
            raise InputError(f"freq_dim must be even, got {self.freq_dim}")

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    @property
    def patch_volume(self) -> int:
        return self.patch_size[0] * self.patch_size[1] * self.patch_size[2]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> DiTConfig:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise ModelError(f"unknown DiT config fields {unknown}; valid: {sorted(known)}")
        return cls(**d)


# ----------------------------------------------------------------------------------------------------
# Patchifier: tokens and their (t, h, w) coordinates together (as LTX-Video's patchifier)


@dataclass(frozen=True)
class Patches:
    """A latent cut into spacetime patches."""

    tokens: Tensor  # (B, N, C*pt*ph*pw)
    coords: Tensor  # (N, 3) long: the patch's (t, h, w) index on the patch grid
    grid: tuple[int, int, int]  # (T/pt, H/ph, W/pw)


def patchify(x: Tensor, patch: tuple[int, int, int]) -> Patches:
    """Cut a latent (B, C, T, H, W) into tokens; T, H, W must be multiples of the patch."""
    pt, ph, pw = patch
    _, _, t, h, w = x.shape
    if t % pt or h % ph or w % pw:
        raise InputError(f"latent {t}x{h}x{w} (T x H x W) is not a multiple of the patch {pt}x{ph}x{pw}")
    grid = (t // pt, h // ph, w // pw)
    tokens = rearrange(x, "b c (t pt) (h ph) (w pw) -> b (t h w) (c pt ph pw)", pt=pt, ph=ph, pw=pw)
    return Patches(tokens, grid_coords(grid, x.device), grid)


def unpatchify(tokens: Tensor, grid: tuple[int, int, int], patch: tuple[int, int, int]) -> Tensor:
    """Inverse of patchify: tokens (B, N, C*pt*ph*pw) -> latent (B, C, T, H, W)."""
    pt, ph, pw = patch
    t, h, w = grid
    return rearrange(  # (B, C, T, H, W)
        tokens, "b (t h w) (c pt ph pw) -> b c (t pt) (h ph) (w pw)", t=t, h=h, w=w, pt=pt, ph=ph, pw=pw
    )


# ----------------------------------------------------------------------------------------------------
# Embedders


def timestep_features(t: Tensor, dim: int, scale: float = 1000.0) -> Tensor:
    """Sinusoidal features of t in [0, 1] (scaled to [0, 1000] as in DDPM/DiT): (...,) -> (..., dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[..., None] * scale * freqs  # (..., dim/2)
    return torch.cat([args.cos(), args.sin()], dim=-1)


class TimeEmbedding(nn.Module):
    """t -> temb (..., D) and the shared adaLN parameters (..., 6, D) (Wan's shared time MLP)."""

    def __init__(self, freq_dim: int, dim: int) -> None:
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.proj = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))

    def forward(self, t: Tensor, extra: Tensor | None = None) -> tuple[Tensor, Tensor]:
        temb = self.mlp(timestep_features(t, self.freq_dim).to(self.mlp[0].weight.dtype))  # (..., D)
        if extra is not None:  # the pooled text, broadcast over t's groups: (B, 1, D) or (1, N, D)
            temb = temb + extra
        mod = rearrange(self.proj(temb), "... (six d) -> ... six d", six=6)  # (..., 6, D)
        return temb, mod


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """x * scale + shift per group: x (B, N, D), shift/scale (B, G, D) with N a multiple of G.

    scale arrives with its +1 already added (DiT's 1 + scale, folded into the tables once per forward).
    """
    g = shift.shape[1]
    xg = rearrange(x, "b (g n) d -> b g n d", g=g)  # (B, G, N/G, D)
    out = torch.addcmul(shift[:, :, None], xg, scale[:, :, None])
    return rearrange(out, "b g n d -> b (g n) d")  # (B, N, D)


def gated(x: Tensor, gate: Tensor, y: Tensor) -> Tensor:
    """x + gate * y per group: x, y (B, N, D), gate (B, G, D)."""
    g = gate.shape[1]
    xg = rearrange(x, "b (g n) d -> b g n d", g=g)  # (B, G, N/G, D)
    yg = rearrange(y, "b (g n) d -> b g n d", g=g)  # (B, G, N/G, D)
    return rearrange(torch.addcmul(xg, gate[:, :, None], yg), "b g n d -> b (g n) d")  # (B, N, D)


# ----------------------------------------------------------------------------------------------------
# The block


class SelfAttention(nn.Module):
    """Full 3D self-attention: QK RMSNorm across heads (as Wan), RoPE, SDPA.

    q and k come from one fused linear and are normalised and rotated together as one contiguous
    (2, B, nh, N, hd) tensor (half the elementwise calls); v has its own linear, because slicing q/k out of a
    fused QKV output leaves them strided, and strided elementwise ops measured slower on CPU than the GEMM
    saved.
    """

    def __init__(self, dim: int, num_heads: int, eps: float) -> None:
        super().__init__()
        self.num_heads, self.eps = num_heads, eps
        self.qk = nn.Linear(dim, 2 * dim)
        self.v = nn.Linear(dim, dim)
        self.qk_scale = nn.Parameter(torch.ones(2, dim))  # RMSNorm weights of q and k
        self.out = nn.Linear(dim, dim)

    def forward(self, x: Tensor, rope: Tensor, mask: Tensor | None) -> Tensor:
        d = x.shape[-1]
        qk = rearrange(self.qk(x), "b n (two d) -> b n two d", two=2)  # (B, N, 2, D)
        qk = F.rms_norm(qk, (d,), eps=self.eps) * self.qk_scale  # (B, N, 2, D)
        qk = rearrange(qk, "b n two (h e) -> two b h n e", h=self.num_heads)  # (2, B, nh, N, hd)
        v = rearrange(self.v(x), "b n (h e) -> b h n e", h=self.num_heads)  # (B, nh, N, hd)
        q, k = apply_rope(qk, rope).to(v.dtype).unbind(0)  # each (B, nh, N, hd)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, nh, N, hd)
        return self.out(rearrange(y, "b h n e -> b n (h e)"))  # (B, N, D)


class CrossAttention(nn.Module):
    """Attention from video tokens to text tokens, with QK RMSNorm."""

    def __init__(self, dim: int, num_heads: int, eps: float) -> None:
        super().__init__()
        self.num_heads, self.eps = num_heads, eps
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.q_scale = nn.Parameter(torch.ones(dim))  # RMSNorm weights of q and k
        self.k_scale = nn.Parameter(torch.ones(dim))
        self.out = nn.Linear(dim, dim)

    def forward(self, x: Tensor, ctx: Tensor, mask: Tensor | None) -> Tensor:
        d = x.shape[-1]
        k, v = self.kv(ctx).chunk(2, dim=-1)  # each (B, L, D)
        q = F.rms_norm(self.q(x), (d,), eps=self.eps) * self.q_scale  # (B, N, D)
        k = F.rms_norm(k, (d,), eps=self.eps) * self.k_scale  # (B, L, D)
        q = rearrange(q, "b n (h d) -> b h n d", h=self.num_heads)  # (B, nh, N, hd)
        k = rearrange(k, "b l (h d) -> b h l d", h=self.num_heads)  # (B, nh, L, hd)
        v = rearrange(v, "b l (h d) -> b h l d", h=self.num_heads)  # (B, nh, L, hd)
        y = F.scaled_dot_product_attention(q.to(v.dtype), k.to(v.dtype), v, attn_mask=mask)  # (B, nh, N, hd)
        return self.out(rearrange(y, "b h n d -> b n (h d)"))  # (B, N, D)


class DiTBlock(nn.Module):
    """adaLN-modulated self-attention, cross-attention, MLP; the modulation is per token group."""

    def __init__(self, config: DiTConfig) -> None:
        super().__init__()
        dim, eps = config.dim, config.eps
        self.norm1 = nn.LayerNorm(dim, eps=eps, elementwise_affine=False)
        self.attn = SelfAttention(dim, config.num_heads, eps)
        self.norm2 = nn.LayerNorm(dim, eps=eps)  # cross-attention is not modulated (as Wan)
        self.cross = CrossAttention(dim, config.num_heads, eps)
        self.norm3 = nn.LayerNorm(dim, eps=eps, elementwise_affine=False)
        self.mlp = nn.Sequential(
            nn.Linear(dim, config.ffn_dim), nn.GELU(approximate="tanh"), nn.Linear(config.ffn_dim, dim)
        )
        self.mod_table = nn.Parameter(torch.zeros(6, dim))  # this block's offset to the shared modulation

    def forward(self, x: Tensor, mod: Tensor, rope: Tensor, ctx: Tensor, self_mask, cross_mask) -> Tensor:
        # x (B, N, D); mod (B, G, 6, D): shared modulation + this block's table (+1 on the scales); ctx (B, L, D)
        shift1, scale1, gate1, shift2, scale2, gate2 = mod.unbind(2)  # each (B, G, D)
        x = gated(x, gate1, self.attn(modulate(self.norm1(x), shift1, scale1), rope, self_mask))
        x = x + self.cross(self.norm2(x), ctx, cross_mask)
        return gated(x, gate2, self.mlp(modulate(self.norm3(x), shift2, scale2)))


class FinalLayer(nn.Module):
    """adaLN-modulated norm and a linear map back to patch values (zero-initialised)."""

    def __init__(self, config: DiTConfig) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(config.dim, eps=config.eps, elementwise_affine=False)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(config.dim, 2 * config.dim))
        self.proj = nn.Linear(config.dim, config.out_channels * config.patch_volume)

    def forward(self, x: Tensor, temb: Tensor) -> tuple[Tensor, Tensor]:
        """(patch values (B, N, C*pt*ph*pw), the modulated features (B, N, D) they were made from)."""
        shift, scale = self.ada(temb).chunk(2, dim=-1)  # each (B, G, D)
        y = modulate(self.norm(x), shift, scale + 1)  # (B, N, D)
        return self.proj(y), y


class ConvHead(nn.Module):
    """DiTConfig.out_conv: a residual over the unpatchified output from its token features and neighbours."""

    def __init__(self, config: DiTConfig) -> None:
        super().__init__()
        c, w = config.out_channels, config.out_conv
        self.feat = nn.Linear(config.dim, w * config.patch_volume)  # per-cell features of each token
        self.conv1 = nn.Conv3d(c + w, w, kernel_size=3, padding=1)
        self.conv2 = nn.Conv3d(w, c, kernel_size=3, padding=1)  # zero at init: the head starts as the identity

    def forward(self, out: Tensor, y: Tensor, grid: tuple[int, int, int], patch: tuple[int, int, int]) -> Tensor:
        """out (B, C, T, H, W) the linear output, y (B, N, D) its token features -> out plus the residual."""
        feat = unpatchify(self.feat(y), grid, patch)  # (B, w, T, H, W)
        h = F.silu(self.conv1(torch.cat([out, feat], dim=1)))  # (B, w, T, H, W)
        return out + self.conv2(h)


# ----------------------------------------------------------------------------------------------------
# The model


class DiT(nn.Module):
    """forward(x, t, text, text_mask=None) -> velocity, the same shape as x.

    x: latent (B, C, T, H, W), or a list of latents (C, T_i, H_i, W_i) of any sizes, packed into one
    sequence. t: (B,) or per-frame (B, T) in [0, 1] (a list of () or (T_i,) tensors when x is a list).
    text: (B, L, text_dim) hidden states; text_mask: (B, L) bool, True for real tokens.
    """

    def __init__(self, config: DiTConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or DiTConfig()
        self.patch_embed = nn.Linear(config.in_channels * config.patch_volume, config.dim)
        self.text_embed = nn.Sequential(
            nn.Linear(config.text_dim, config.dim), nn.GELU(approximate="tanh"), nn.Linear(config.dim, config.dim)
        )
        self.time = TimeEmbedding(config.freq_dim, config.dim)
        if config.pooled_text:
            self.text_pool = nn.Sequential(nn.Linear(config.text_dim, config.dim), nn.SiLU(),
                                           nn.Linear(config.dim, config.dim))
        self.rope = RotaryEmbedding3D(config.head_dim, config.rope_theta)
        self.blocks = nn.ModuleList([DiTBlock(config) for _ in range(config.depth)])
        self.final = FinalLayer(config)
        if config.out_conv:
            self.head = ConvHead(config)
        self.gradient_checkpointing = False
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """Xavier linears; zero adaLN and output layers so every block starts as the identity (DiT)."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.time.mlp[0].weight, std=0.02)
        nn.init.normal_(self.time.mlp[2].weight, std=0.02)
        zero = [self.time.proj[1], self.final.ada[1], self.final.proj]
        if self.config.pooled_text:
            zero.append(self.text_pool[2])
        if self.config.out_conv:
            zero.append(self.head.conv2)
        for lin in zero:
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)
        for block in self.blocks:
            nn.init.zeros_(block.mod_table)

    # -- inputs to token sequences ------------------------------------------------------------------

    def _frame_t(self, t: Tensor, batch: int, frames: int) -> Tensor:
        """Timesteps per patch-frame: (B,) -> (B, 1); (B, T) -> (B, T/pt) (mean over a patch's frames)."""
        pt = self.config.patch_size[0]
        if t.dim() == 0:
            t = t.expand(batch)
        if t.dim() == 1:
            if t.shape[0] != batch:
                raise InputError(f"t has {t.shape[0]} entries for a batch of {batch}")
            return t[:, None]  # (B, 1)
        if t.shape != (batch, frames):
            raise InputError(f"per-frame t must be ({batch}, {frames}), got {tuple(t.shape)}")
        return t.reshape(batch, frames // pt, pt).mean(-1)  # (B, T/pt)

    def _pooled(self, text: Tensor, text_mask: Tensor | None) -> Tensor | None:
        """The pooled text vector (B, 1, D) for adaLN (config.pooled_text), or None: the masked mean of the
        text states through text_pool."""
        if not self.config.pooled_text:
            return None
        states = text.to(self.patch_embed.weight.dtype)  # (B, L, text_dim)
        if text_mask is None:
            mean = states.mean(1)
        else:
            w = text_mask.to(states.dtype)[..., None]  # (B, L, 1)
            mean = (states * w).sum(1) / w.sum(1).clamp_min(1.0)  # (B, text_dim)
        return self.text_pool(mean)[:, None]  # (B, 1, D)

    def _text(self, text: Tensor, text_mask: Tensor | None) -> tuple[Tensor, Tensor | None]:
        if text.dim() != 3 or text.shape[-1] != self.config.text_dim:
            raise InputError(f"text must be (B, L, {self.config.text_dim}), got {tuple(text.shape)}")
        ctx = self.text_embed(text.to(self.patch_embed.weight.dtype))  # (B, L, D)
        if text_mask is None or bool(text_mask.all()):
            return ctx, None
        return ctx, text_mask[:, None, None, :].bool()  # (B, 1, 1, L)

    def forward(self, x: Tensor | list[Tensor], t: Tensor | list[Tensor], text: Tensor,
                text_mask: Tensor | None = None) -> Tensor | list[Tensor]:
        if isinstance(x, (list, tuple)):
            return self._forward_packed(list(x), list(t), text, text_mask)
        if x.dim() != 5 or x.shape[1] != self.config.in_channels:
            raise InputError(f"x must be (B, {self.config.in_channels}, T, H, W), got {tuple(x.shape)}")
        b = x.shape[0]
        patches = patchify(x, self.config.patch_size)
        ctx, cross_mask = self._text(text, text_mask)
        frame_t = self._frame_t(torch.as_tensor(t, device=x.device), b, x.shape[2])  # (B, G)
        temb, mod = self.time(frame_t, self._pooled(text, text_mask))  # (B, G, D), (B, G, 6, D)
        rope = self.rope.for_grid(patches.grid, x.device)  # (N, hd/2) complex
        h = self.patch_embed(patches.tokens)  # (B, N, D)
        h = self._blocks(h, mod, rope, ctx, None, cross_mask)
        out, y = self.final(h, temb)  # (B, N, C*pt*ph*pw), (B, N, D)
        out = self._output(out, y, patches.grid)  # (B, C, T, H, W)
        return self._velocity(out, x, torch.as_tensor(t, device=x.device)).to(x.dtype)

    def _output(self, out: Tensor, y: Tensor, grid: tuple[int, int, int]) -> Tensor:
        """Patch values (B, N, C*pt*ph*pw) and their features (B, N, D) -> the output latent (B, C, T, H, W)."""
        latent = unpatchify(out, grid, self.config.patch_size)
        if not self.config.out_conv:
            return latent
        return self.head(latent, y, grid, self.config.patch_size)

    def _velocity(self, out: Tensor, x: Tensor, t: Tensor) -> Tensor:
        """The network's output (B, C, T, H, W) as a velocity: itself, or (x_t - x0) / t for "sample"."""
        if self.config.prediction == "velocity":
            return out
        b, frames = x.shape[0], x.shape[2]
        t = t.expand(b) if t.dim() == 0 else t
        te = t.float().reshape(b, 1, frames if t.dim() == 2 else 1, 1, 1).clamp_min(self.config.min_t)
        return (x.float() - out.float()) / te  # (B, C, T, H, W)

    def _forward_packed(self, xs: list[Tensor], ts: list[Tensor], text: Tensor, text_mask: Tensor | None):
        """Pack clips of any sizes into one sequence; attention is block-diagonal per clip (NaViT)."""
        if len(xs) != len(ts) or len(xs) != text.shape[0]:
            raise InputError(f"packing needs one t and one text per clip: {len(xs)} clips, {len(ts)} t, "
                             f"{text.shape[0]} texts")
        dev = xs[0].device
        tokens, rope, tok_t, seq_ids, grids = [], [], [], [], []
        for i, (xi, ti) in enumerate(zip(xs, ts, strict=True)):
            p = patchify(xi[None], self.config.patch_size)
            ft = self._frame_t(torch.as_tensor(ti, device=dev)[None], 1, xi.shape[1])  # (1, Tp) or (1, 1)
            per_frame = p.grid[1] * p.grid[2]
            tok_t.append(ft.expand(1, p.grid[0]).repeat_interleave(per_frame, dim=1)[0])  # (N_i,)
            tokens.append(p.tokens[0])
            rope.append(self.rope.for_grid(p.grid, dev))
            seq_ids.append(torch.full((p.tokens.shape[1],), i, device=dev))
            grids.append(p.grid)
        seq = torch.cat(seq_ids)  # (N,)
        pooled = self._pooled(text, text_mask)  # (B, 1, D) or None
        per_token = None if pooled is None else pooled[seq, 0][None]  # (1, N, D): each token its clip's
        temb, mod = self.time(torch.cat(tok_t)[None], per_token)  # (1, N, D), (1, N, 6, D): one group per token
        ctx_all, _ = self._text(text, None)  # (B, L, D)
        valid = text_mask.bool() if text_mask is not None else torch.ones(text.shape[:2], dtype=torch.bool,
                                                                           device=dev)
        ctx = ctx_all[valid][None]  # (1, Ltot, D): only real text tokens
        text_ids = torch.arange(text.shape[0], device=dev)[:, None].expand_as(valid)[valid]  # (Ltot,)
        self_mask = (seq[:, None] == seq[None, :])[None, None]  # (1, 1, N, N)
        cross_mask = (seq[:, None] == text_ids[None, :])[None, None]  # (1, 1, N, Ltot)
        h = self.patch_embed(torch.cat(tokens)[None])  # (1, N, D)
        h = self._blocks(h, mod, torch.cat(rope), ctx, self_mask, cross_mask)
        out, y = self.final(h, temb)  # (1, N, C*pt*ph*pw), (1, N, D)
        sizes = [g[0] * g[1] * g[2] for g in grids]
        return [
            self._velocity(self._output(o[None], yi[None], g), xi[None],
                           torch.as_tensor(ti, device=dev)[None])[0].to(xi.dtype)  # (C, T, H, W)
            for o, yi, g, xi, ti in zip(out[0].split(sizes), y[0].split(sizes), grids, xs, ts, strict=True)
        ]

    def _blocks(self, h: Tensor, mod: Tensor, rope: Tensor, ctx: Tensor, self_mask, cross_mask) -> Tensor:
        # every block's table, with DiT's "1 + scale" folded in, in one op: (depth, 6, D)
        ones = torch.tensor([0.0, 1.0, 0.0, 0.0, 1.0, 0.0], device=mod.device, dtype=mod.dtype)[:, None]
        tables = torch.stack([b.mod_table for b in self.blocks]) + ones  # (depth, 6, D)
        for block, table in zip(self.blocks, tables, strict=True):
            m = mod + table  # (B, G, 6, D)
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                from torch.utils.checkpoint import checkpoint

                h = checkpoint(block, h, m, rope, ctx, self_mask, cross_mask, use_reentrant=False)
            else:
                h = block(h, m, rope, ctx, self_mask, cross_mask)
        return h

    # -- switches and files -------------------------------------------------------------------------

    def compile_blocks(self, **kwargs) -> DiT:
        """Compile each block with torch.compile in place (state-dict keys are unchanged)."""
        for block in self.blocks:
            block.compile(**kwargs)
        return self

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write directory/config.json and directory/model.safetensors, atomically (kino.models.files)."""
        from kino.models.files import save_model

        return save_model(self, self.config, "DiT", directory)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, device: str | torch.device = "cpu",
                        dtype: torch.dtype | None = None) -> DiT:
        """Load a DiT saved by save_pretrained, in eval mode; ModelError with one line when the directory
        is not one or its config has fields DiTConfig does not know."""
        from kino.models.files import load_weights, read_config

        return load_weights(cls(read_config(directory, DiTConfig, "DiT", "DiT")), directory, "DiT", device, dtype)


def flops_per_token(config: DiTConfig, num_tokens: int, text_tokens: int) -> int:
    """Forward FLOPs per video token (2 per multiply-add): linears plus attention score/value products."""
    d, f = config.dim, config.ffn_dim
    linear = 2 * (4 * d * d + 2 * d * d + 2 * d * f)  # self QKV+out, cross Q+out, MLP
    cross_kv = 2 * 2 * d * d * text_tokens / max(num_tokens, 1)  # text K/V, shared by the clip's tokens
    attn = 2 * 2 * d * (num_tokens + text_tokens)  # QK^T and AV for self and cross
    embed_out = 2 * d * config.in_channels * config.patch_volume * 2
    w, c, pv = config.out_conv, config.out_channels, config.patch_volume
    head = 2 * pv * (d * w + 27 * (c + w) * w + 27 * w * c) if w else 0  # per token: its pv cells' features and convs
    return int(config.depth * (linear + cross_kv + attn) + embed_out + head)


# ----------------------------------------------------------------------------------------------------
# Presets (DiT repo style). Parameter counts and FLOPs are in docs/dit.md.


def dit_world_tiny(**kw) -> DiTConfig:
    return DiTConfig(**{"dim": 192, "depth": 8, "num_heads": 4, "ffn_dim": 768, **kw})


def dit_world_tiny_v2(**kw) -> DiTConfig:
    """world-tiny v2 (issue 18): v1's transformer on the v2 VAE's latent (24 channels, 4x4x4): 1x4x4 patches
    keep a 64x64x17 clip at v1's 80 tokens (5 x 4 x 4; 96x64: 5 x 4 x 6), so sides are multiples of 16. A token
    is 384 values, twice the width: the network predicts the clean latent (`prediction="sample"`, JiT); a
    pooled text vector joins the timestep embedding in adaLN (`pooled_text`), and a convolutional output head
    (`out_conv`, since run r) crosses the token boundaries (docs/dit.md)."""
    return DiTConfig(**{"in_channels": 24, "out_channels": 24, "patch_size": (1, 4, 4), "dim": 192, "depth": 8,
                        "num_heads": 4, "ffn_dim": 768, "prediction": "sample", "pooled_text": True, "out_conv": 32,
                        **kw})


def dit_small(**kw) -> DiTConfig:
    return DiTConfig(**{"dim": 512, "depth": 12, "num_heads": 8, "ffn_dim": 2048, **kw})


def dit_base(**kw) -> DiTConfig:
    return DiTConfig(**{"dim": 1024, "depth": 24, "num_heads": 16, "ffn_dim": 4096, **kw})


def dit_1b(**kw) -> DiTConfig:
    """Wan-2.1-1.3B-class dimensions."""
    return DiTConfig(**{"dim": 1536, "depth": 30, "num_heads": 12, "ffn_dim": 8960, **kw})


DIT_PRESETS = {DiTPreset.WORLD_TINY: dit_world_tiny, DiTPreset.WORLD_TINY_V2: dit_world_tiny_v2,
               DiTPreset.SMALL: dit_small, DiTPreset.BASE: dit_base, DiTPreset.B1: dit_1b}


def autocast_for(device: torch.device | str):
    """bf16 autocast on CUDA, nothing (float32) elsewhere."""
    import contextlib

    if torch.device(device).type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
