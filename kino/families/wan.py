"""Wan 2.1 / 2.2 (Alibaba, 1.3B / 5B / 14B) behind kino's interface, through diffusers' Wan pipelines.

A Wan folder holds one pipeline; what it can do follows from it (diffusers 0.42.1, pipelines/wan/):

    folder (model_index.json)         variant                    kino modes
    WanPipeline                       2.1 T2V 1.3B / 14B         text, edit (WanVideoToVideoPipeline(strength),
                                                                 the same components)
    WanPipeline + transformer_2       2.2 T2V A14B (two experts  text (the low-noise expert takes over at
                + boundary_ratio                     by noise)   boundary_ratio; WanVideoToVideoPipeline
                                                                 has a single transformer, so no edit)
    WanPipeline + expand_timesteps    2.2 TI2V-5B                text, image-to-video (WanImageToVideoPipeline
                                                                 with expand_timesteps: the first latent frame
                                                                 kept clean; it ignores `last_image`, so no
                                                                 --to-image, keyframes or loops)
    WanImageToVideoPipeline           2.1 I2V 14B / 2.2 I2V A14B image-to-video (first frame); 2.2 A14B
                                                                 also interpolate, connect, loop (last_image:
                                                                 no image encoder, the channels carry it)
      + pos_embed_seq_len             2.1 FLF2V-14B              interpolate (first + last: it needs both),
                                                                 connect (A's last frame to B's first),
                                                                 loop (the video's last frame to its first)
    WanVACEPipeline                   2.1 VACE 1.3B / 14B        text, image-to-video (either end),
                                                                 interpolate (any frames), extend (either way),
                                                                 connect, loop, storyboard: known frames in
                                                                 `video` with a black `mask`, the rest gray
                                                                 under white; longer than a pass: windows

Frames: 1 + 4k (the VAE's 4x temporal factor); sizes: multiples of 16 (32 for TI2V-5B's 16x VAE).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from kino.errors import InputError
from kino.families.base import Family
from kino.families.diffusers_common import quiet, short_count, to_pil
from kino.families.diffusers_model import DiffusersModel, Job, Pass, defaults

VACE_CONTEXT_FRAMES = 9  # frames of a given video a VACE extension or transition sees
GRAY = 128  # VACE's "to generate" pixel value under a white mask
# An I2V folder is recognised by its class's name: importing diffusers' I2V module imports transformers'
# CLIPImageProcessor, which logs a torchvision warning (transformers 5 falls back to the PIL processor)
# on every Wan load, though only I2V folders use it (and they load it inside diffusers_common.quiet).
I2V = "WanImageToVideoPipeline"


class WanModel(DiffusersModel):
    family = Family.WAN

    def configure(self) -> None:
        from diffusers import WanPipeline, WanVACEPipeline

        pipe = self.pipe
        cfg = pipe.transformer.config
        n = sum(p.numel() for p in pipe.transformer.parameters())
        size = {(30, 1536): "1.3B", (40, 5120): "14B", (30, 3072): "5B"}.get(
            (cfg.num_layers, cfg.num_attention_heads * cfg.attention_head_dim), short_count(n))
        two = getattr(pipe, "transformer_2", None) is not None and pipe.config.get("boundary_ratio") is not None
        self.expand = bool(pipe.config.get("expand_timesteps", False))
        big = (1280, 720, 16.0, 81, 40, 4.0, 16)
        if isinstance(pipe, WanVACEPipeline):
            self.kind, modes, self.variant = "vace", {"text", "image-to-video", "interpolate", "extend", "connect",
                                                      "loop", "storyboard"}, f"Wan 2.1 VACE {size}"
        elif type(pipe).__name__ == I2V:
            flf = cfg.get("pos_embed_seq_len") is not None
            self.kind = "flf2v" if flf else "i2v"
            # FLF2V's image tokens are the two images' (pos_embed_seq_len): it needs both ends, never one.
            # Wan 2.2 I2V (no image_dim, so no CLIP states) takes last_image in its mask and latent channels
            # alone: the first frame, or the first and the last
            both = cfg.get("image_dim") is None
            modes = ({"interpolate", "connect", "loop"} if flf else
                     {"image-to-video", "interpolate", "connect", "loop"} if both else {"image-to-video"})
            self.variant = (f"Wan 2.1 FLF2V {size}" if flf else
                            f"Wan 2.2 I2V A14B ({size} x 2)" if two else f"Wan 2.1 I2V {size}")
        elif isinstance(pipe, WanPipeline):
            self.kind = "t2v"
            # WanVideoToVideoPipeline has one transformer and no per-token timesteps: no edit on 2.2
            modes = {"text", "image-to-video"} if self.expand else {"text"} if two else {"text", "edit"}
            self.variant = ("Wan 2.2 TI2V " + size if self.expand else
                            f"Wan 2.2 T2V A14B ({size} x 2)" if two else f"Wan 2.1 T2V {size}")
        else:
            raise InputError(f"{self.path}: {type(pipe).__name__} is a Wan pipeline kino does not map yet; it runs "
                             f"WanPipeline, WanImageToVideoPipeline and WanVACEPipeline folders")
        self.modes = frozenset(modes)
        if self.expand:  # TI2V-5B: 1280x704 at 24 fps, 121 frames, 16x VAE + 2x2 patches
            self.defaults = defaults(1280, 704, 24.0, 121, 50, 5.0, size_multiple=32, frame_multiple=4,
                                     max_frames=121)
        elif two or self.kind == "flf2v":  # the 14B 720p models
            self.defaults = defaults(*big[:6], size_multiple=16, frame_multiple=4, max_frames=81)
        else:  # Wan 2.1 at 480p: 832x480, 16 fps, 81 frames
            self.defaults = defaults(832, 480, 16.0, 81, 50, 5.0, size_multiple=16, frame_multiple=4, max_frames=81)
        self.two_experts = two

    def tokens(self) -> tuple[int, int, int]:
        cfg, d = self.pipe.transformer.config, self.defaults
        frames = round(d.seconds * d.fps)
        spatial = 32 if self.expand else 16
        tokens = ((frames - 1) // 4 + 1) * (d.height // spatial) * (d.width // spatial)
        return tokens, cfg.num_attention_heads * cfg.attention_head_dim, cfg.num_layers

    def _components(self) -> dict:
        p = self.pipe
        return {"tokenizer": p.tokenizer, "text_encoder": p.text_encoder, "vae": p.vae, "scheduler": p.scheduler,
                "transformer": p.transformer}

    # -- modes ---------------------------------------------------------------------------------------

    def text_once(self, job: Job, frames: int) -> np.ndarray:
        return self.call(self.pipe, job, num_frames=self.total_frames(job, frames))

    def image_to_video(self, job: Job) -> Pass:
        image = job.image(job.request.from_image)
        total = self.total_frames(job, job.frames)
        if total == 1:
            raise InputError("image-to-video needs more than one frame; give --seconds")
        if self.kind == "vace":
            at = total - 1 if job.request.to_image else 0
            return Pass(self.vace(job, total, {at: image}))
        if job.request.to_image:
            raise InputError(f"{self.variant} conditions on the first frame only; --to-image needs LTX-Video or "
                             f"Wan VACE")
        return Pass(self.call(self.i2v_pipe(), job, num_frames=total, image=to_pil(image[None])[0]))

    def interpolate(self, job: Job) -> Pass:
        keys = [job.image(k) for k in job.request.keyframes]
        asked = job.frames if job.request.seconds is not None else None
        idx = self.key_indices(job, len(keys), self.total_frames(job, asked or job.frames))
        total = self.total_frames(job, max(asked or 0, idx[-1] + 1))
        if self.kind == "vace":
            return Pass(self.vace(job, total, dict(zip(idx, keys, strict=True))))
        if len(keys) != 2 or idx[0] != 0 or idx[-1] != total - 1:
            raise InputError(f"{self.variant} interpolates between a first and a last frame only (2 keyframes at the "
                             f"start and the end); more keyframes or other times need LTX-Video or Wan VACE")
        return Pass(self.flf(job, total, keys[0], keys[1]))

    context_frames = VACE_CONTEXT_FRAMES

    def extend(self, job: Job) -> Pass:  # VACE only
        video = job.video(job.request.video)
        if job.request.backward:
            c = min(len(video), VACE_CONTEXT_FRAMES)
            total = self.total_frames(job, c + job.frames)
            out = self.vace(job, total, {total - c + i: f for i, f in enumerate(video[:c])})
            new = out[:total - c][-job.frames:]
            return Pass(np.concatenate([new, self.given(video)]), (len(new),))
        return self.extend_forward(job, video)

    def extend_once(self, job: Job, video: np.ndarray, frames: int) -> np.ndarray:
        """VACE: `frames` new frames after `video` (uint8), its last 9 frames kept at the start."""
        c = min(len(video), VACE_CONTEXT_FRAMES)
        total = self.total_frames(job, c + frames)
        return self.vace(job, total, dict(enumerate(video[-c:])))[c:c + frames]

    def connect(self, job: Job) -> Pass:
        a, b = (job.video(v) for v in job.request.videos)
        return self._bridge(job, a, b, include_b=True)

    def loop(self, job: Job) -> Pass:
        if not job.request.video:
            if "text" not in self.modes:
                raise InputError(f"{self.variant} loops a given video (--video); a loop from text needs a model that "
                                 f"makes video from text (LTX-Video, Wan VACE)")
            trans = max(4, job.frames // 4)
            body = self.text(replace(job, frames=max(1, job.frames - trans)))
            video = (body.frames * 255).round().astype(np.uint8)
            out = self._bridge(job, video, video, include_b=False, frames=trans)
            return Pass(out.frames, out.seams, calls=2)
        video = job.video(job.request.video)
        return self._bridge(job, video, video, include_b=False)

    def _bridge(self, job: Job, a: np.ndarray, b: np.ndarray, include_b: bool, frames: int | None = None) -> Pass:
        """a, a transition of `frames` from a's end into b's start (b = a for a loop), then b if asked."""
        frames = frames or job.frames
        if self.kind == "vace":
            ca, cb = min(len(a), VACE_CONTEXT_FRAMES), min(len(b), VACE_CONTEXT_FRAMES)
            total = self.total_frames(job, ca + frames + cb)
            known = {**dict(enumerate(a[-ca:])), **{total - cb + i: f for i, f in enumerate(b[:cb])}}
            gen = self.vace(job, total, known)[ca:total - cb]
        else:  # FLF2V: a's last frame first, b's first frame last
            total = self.total_frames(job, frames + 2)
            gen = self.flf(job, total, a[-1], b[0])[1:-1]
        parts = [self.given(a), gen] + ([self.given(b)] if include_b else [])
        return Pass(np.concatenate(parts), (len(a), len(a) + len(gen)))

    def edit(self, job: Job) -> Pass:
        """SDEdit through WanVideoToVideoPipeline(strength) with this folder's components."""
        from diffusers import WanVideoToVideoPipeline

        padded, strength, n = self.edit_input(job)  # (total, H, W, 3)
        pipe = WanVideoToVideoPipeline(**self._components())
        pipe.set_progress_bar_config(disable=True)
        return Pass(self.call(pipe, job, video=to_pil(padded), strength=strength)[:n])

    # -- pipelines and calls -------------------------------------------------------------------------

    def i2v_pipe(self):
        """The folder's image-to-video pipeline (TI2V-5B: WanImageToVideoPipeline over its T2V components)."""
        if self.kind != "t2v":
            return self.pipe
        with quiet():  # its module's CLIPImageProcessor import warns about torchvision (see I2V)
            from diffusers import WanImageToVideoPipeline
        pipe = WanImageToVideoPipeline(**self._components(), expand_timesteps=True)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def flf(self, job: Job, total: int, first: np.ndarray, last: np.ndarray) -> np.ndarray:
        first_img, last_img = to_pil(np.stack([first, last]))
        return self.call(self.pipe, job, num_frames=total, image=first_img, last_image=last_img)

    def vace(self, job: Job, total: int, known: dict[int, np.ndarray]) -> np.ndarray:
        """A VACE call: frame i of `known` ((H, W, 3) uint8) is kept (black mask), the rest generated."""
        from PIL import Image

        video = np.full((total, job.height, job.width, 3), GRAY, dtype=np.uint8)
        mask = np.full((total, job.height, job.width), 255, dtype=np.uint8)
        for i, frame in known.items():
            if not 0 <= i < total:
                raise InputError(f"a known frame at {i} is outside the {total} frames of this pass")
            video[i], mask[i] = frame, 0
        return self.call(self.pipe, job, num_frames=total, video=to_pil(video),
                         mask=[Image.fromarray(m) for m in mask])  # (H, W) uint8 -> "L"
