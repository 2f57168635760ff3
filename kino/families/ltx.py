"""LTX-Video (Lightricks, 2B / 13B, 0.9.5+) behind kino's interface, through diffusers' LTXConditionPipeline.

LTX-Video is the open family trained for condition frames at arbitrary times, which is kino's own
mechanism, so every mode maps onto one `LTXConditionPipeline` call (diffusers 0.42.1,
pipelines/ltx/pipeline_ltx_condition.py):

    text / image     no conditions (num_frames=1 for an image)
    image-to-video   an image condition at frame 0 (or, --to-image, at the last frame)
    interpolate      an image condition at each keyframe's frame (strength 1)
    extend           the video's tail (1 + 8k frames) at frame 0, or backward its head at the end;
                     longer than one pass: windows, each continuing the last (also long text, storyboards)
    connect, loop    A's tail at frame 0 and B's head at the end (a loop: the video's own head)
    edit (SDEdit)    the video's latents as `latents`, `denoise_strength` = strength

Video conditions hold 1 + 8k frames (the VAE's 8x temporal factor); a condition at frame_index > 0
must start on a multiple of 8, which the totals here keep. Any LTX folder (LTXPipeline,
LTXImageToVideoPipeline, LTXConditionPipeline) is run through LTXConditionPipeline built from its
components: the condition tokens at arbitrary frames were trained from 0.9.5 on.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from kino.errors import InputError
from kino.families.base import Family
from kino.families.diffusers_common import short_count
from kino.families.diffusers_model import DiffusersModel, Job, Pass, defaults

LTX_MODES = frozenset({"text", "image-to-video", "interpolate", "extend", "connect", "loop", "edit", "storyboard"})
MAX_CONDITION_FRAMES = 17  # frames of a video condition (1 + 8k): 3 latent frames of motion to continue


class LTXModel(DiffusersModel):
    family = Family.LTX

    def configure(self) -> None:
        from diffusers import LTXConditionPipeline

        loaded = self.pipe
        if not isinstance(loaded, LTXConditionPipeline):
            parts = {k: loaded.components[k] for k in ("scheduler", "vae", "text_encoder", "tokenizer", "transformer")}
            self.pipe = LTXConditionPipeline(**parts)
            self.notes = (f"{type(loaded).__name__} folder run through LTXConditionPipeline; condition frames at "
                          f"any time need LTX-Video 0.9.5+ weights",)
        cfg = self.pipe.transformer.config
        hidden = cfg.num_attention_heads * cfg.attention_head_dim
        size = {(28, 2048): "2B", (48, 4096): "13B"}.get((cfg.num_layers, hidden))
        n = sum(p.numel() for p in self.pipe.transformer.parameters())
        self.variant = f"LTX-Video {size}" if size else f"LTX-Video ({short_count(n)}-parameter transformer)"
        self.modes = LTX_MODES
        # LTX-Video's recommended 704x512 (diffusers' default) at 25 fps; 121 frames (8k + 1) in one pass
        self.defaults = defaults(704, 512, 25.0, 121, 40, 3.0, size_multiple=32, frame_multiple=8, max_frames=257)

    def tokens(self) -> tuple[int, int, int]:
        cfg, d = self.pipe.transformer.config, self.defaults
        frames = round(d.seconds * d.fps)
        tokens = ((frames - 1) // 8 + 1) * (d.height // 32) * (d.width // 32)
        return tokens, cfg.num_attention_heads * cfg.attention_head_dim, cfg.num_layers

    def common(self, job: Job) -> dict:
        kw = super().common(job)
        kw["frame_rate"] = job.fps
        if self.pipe.vae.config.timestep_conditioning:  # 0.9.1+ VAEs decode at a small noise level
            kw.update(decode_timestep=0.05, decode_noise_scale=0.025)
        return kw

    def conditioned(self, job: Job, total: int, conditions: list) -> np.ndarray:
        """One call with `conditions` [(image or list of frames (T, H, W, 3) uint8, frame_index)]."""
        from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition

        from kino.families.diffusers_common import to_pil

        conds = [LTXVideoCondition(image=to_pil(x[None])[0], frame_index=i) if x.ndim == 3
                 else LTXVideoCondition(video=to_pil(x), frame_index=i) for x, i in conditions]
        return self.call(self.pipe, job, num_frames=total, conditions=conds or None)

    @staticmethod
    def condition_length(video: np.ndarray) -> int:
        """Frames of a video condition: 1 + 8k, at most MAX_CONDITION_FRAMES and the video's length."""
        return 1 + 8 * ((min(len(video), MAX_CONDITION_FRAMES) - 1) // 8)

    # -- modes ---------------------------------------------------------------------------------------

    def text_once(self, job: Job, frames: int) -> np.ndarray:
        return self.conditioned(job, self.total_frames(job, frames), [])

    def image_to_video(self, job: Job) -> Pass:
        image = job.image(job.request.from_image)
        total = self.total_frames(job, job.frames)
        if job.request.to_image and total == 1:
            raise InputError("--to-image needs a video of more than one frame")
        at = total - 1 if job.request.to_image else 0
        return Pass(self.conditioned(job, total, [(image, at)]))

    def interpolate(self, job: Job) -> Pass:
        keys = [job.image(k) for k in job.request.keyframes]
        asked = job.frames if job.request.seconds is not None else None
        idx = self.key_indices(job, len(keys), self.total_frames(job, asked or job.frames))
        total = self.total_frames(job, max(asked or 0, idx[-1] + 1))
        return Pass(self.conditioned(job, total, list(zip(keys, idx, strict=True))))

    context_frames = MAX_CONDITION_FRAMES

    def extend(self, job: Job) -> Pass:
        video = job.video(job.request.video)
        if job.request.backward:  # the video's head at the end; the new frames just before it
            c = self.condition_length(video)
            total = self.total_frames(job, c + job.frames)
            out = self.conditioned(job, total, [(video[:c], total - c)])
            new = out[:total - c][-job.frames:]
            return Pass(np.concatenate([new, self.given(video)]), (len(new),))
        return self.extend_forward(job, video)

    def extend_once(self, job: Job, video: np.ndarray, frames: int) -> np.ndarray:
        """`frames` new frames after `video` (uint8), its tail (1 + 8k frames) the condition at frame 0."""
        c = self.condition_length(video)
        total = self.total_frames(job, c + frames)
        return self.conditioned(job, total, [(video[-c:], 0)])[c:c + frames]

    def connect(self, job: Job) -> Pass:
        a, b = (job.video(v) for v in job.request.videos)
        return self._bridge(job, a, b, include_b=True)

    def loop(self, job: Job) -> Pass:
        if job.request.video:
            return self._bridge(job, video := job.video(job.request.video), video, include_b=False)
        trans = max(8, job.frames // 4)  # a body by text, then a transition from its end to its start
        body = self.text(replace(job, frames=max(1, job.frames - trans))).frames
        out = self._bridge(job, (body * 255).round().astype(np.uint8), None, include_b=False, frames=trans)
        return Pass(out.frames, out.seams, calls=2)

    def _bridge(self, job: Job, a: np.ndarray, b: np.ndarray | None, include_b: bool, frames: int | None = None):
        """a, a transition of `frames` from a's end into b's start (b = a for a loop), then b if asked."""
        b = a if b is None else b
        ca, cb = self.condition_length(a), self.condition_length(b)
        total = self.total_frames(job, ca + (frames or job.frames) + cb)
        out = self.conditioned(job, total, [(a[-ca:], 0), (b[:cb], total - cb)])
        gen = out[ca:total - cb]
        parts = [self.given(a), gen] + ([self.given(b)] if include_b else [])
        return Pass(np.concatenate(parts), (len(a), len(a) + len(gen)))

    def edit(self, job: Job) -> Pass:
        """SDEdit: the video's normalized latents noised to `denoise_strength`, then denoised."""
        from diffusers.pipelines.ltx.pipeline_ltx_condition import retrieve_latents

        padded, strength, n = self.edit_input(job)  # (total, H, W, 3)
        return Pass(self.call(self.pipe, job, num_frames=len(padded), denoise_strength=strength,
                              latents=self.encode(padded, job, retrieve_latents))[:n])

    def encode(self, frames: np.ndarray, job: Job, retrieve_latents):
        """(T, H, W, 3) uint8 -> LTX's normalized latents (1, C, T', H', W'), sampled with the job's seed."""
        import torch

        from kino.families.diffusers_common import to_pil

        pipe = self.pipe
        x = pipe.video_processor.preprocess_video(to_pil(frames), job.height, job.width)  # (1, 3, T, H, W)
        x = x.to(device=pipe._execution_device, dtype=pipe.vae.dtype)
        with torch.no_grad():
            lat = retrieve_latents(pipe.vae.encode(x), generator=torch.Generator("cpu").manual_seed(job.seed + 1))
        return pipe._normalize_latents(lat, pipe.vae.latents_mean, pipe.vae.latents_std)
