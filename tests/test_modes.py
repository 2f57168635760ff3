"""The conditioned modes on a tiny untrained pipeline: the mechanics, with assertions that fail when the
conditioning, the splicing or the bookkeeping is wrong (quality needs the trained model: benchmarks)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from kino import modes
from kino.diffusion.conditioning import Condition
from kino.errors import InputError
from kino.eval.continuity import psnr, seam_report
from kino.pipeline import KinoPipeline, SchedulerConfig, Shot, plan_windows

KW = {"width": 16, "height": 16, "fps": 8.0, "seed": 3}


@pytest.fixture(scope="module")
def pipe(tiny_pipeline) -> KinoPipeline:
    torch.set_num_threads(1)
    sched = SchedulerConfig(num_inference_steps=3, max_latent_frames=6, width=16, height=16)  # 21 frames a pass
    return tiny_pipeline(scheduler=sched, random_dit=True, max_length=32, freq_dim=32)


def frames(n: int, seed: int = 0, size: int = 16) -> np.ndarray:
    """A smooth moving gradient (not noise: the VAE round trip of noise is meaningless)."""
    y, x = np.mgrid[0:size, 0:size] / size
    out = [np.stack([x + 0.05 * t, y, np.full_like(x, 0.5 + 0.3 * np.sin(t / 3 + seed))], -1) for t in range(n)]
    return (np.clip(np.stack(out), 0, 1) * 255).astype(np.uint8)


def roundtrip(pipe, clip: np.ndarray) -> np.ndarray:
    return pipe.decode_latents(pipe.encode_frames(clip))


def test_condition_latents_come_out_exactly_as_encoded(pipe):
    clip = frames(5)
    z = pipe.encode_frames(clip)  # (1, 4, 2, 2, 2)
    shape = pipe.latent_shape(13, 16, 16)
    latent, mask = torch.zeros(shape), torch.zeros(shape[2], dtype=torch.bool)
    latent[:, :, :2], mask[:2] = z, True
    captured = {}
    real = pipe.decode_latents
    pipe.decode_latents = lambda lat: captured.setdefault("z", lat) is None or real(lat)
    try:
        pipe("a circle", num_frames=13, condition=Condition(latent, mask), **KW)
    finally:
        pipe.decode_latents = real
    assert torch.equal(captured["z"][:, :, :2], z)  # bit for bit, after every solver step
    assert not torch.allclose(captured["z"][:, :, 2:], torch.zeros(1))


def test_image_to_video_frame0_is_the_vae_roundtrip_of_the_input(pipe):
    image = frames(1)[0]
    out = modes.image_to_video(pipe, "a circle", image, 9, **KW)
    want = roundtrip(pipe, image[None])[0]
    assert out.frames.shape == (9, 16, 16, 3) and out.settings.condition_frames == (0,)
    # the causal decoder gives frame 0 from latent 0 alone: the same pixels as the round trip
    assert psnr(out.frames[0], want) > 45
    # while an unconditioned video of the same seed does not start with the image
    free = pipe("a circle", num_frames=9, **KW).frames
    assert psnr(free[0], want) < psnr(out.frames[0], want) - 10


def test_to_image_conditions_the_last_latent(pipe):
    image = frames(1)[0]
    out = modes.image_to_video(pipe, "a circle", image, 9, to_image=True, **KW)
    assert out.settings.condition_frames == (2,) and len(out.frames) == 9


def test_edit_at_strength_zero_returns_the_roundtrip(pipe):
    clip = frames(7)  # not 1 + 4k: padded for the VAE, trimmed after
    out = modes.edit(pipe, "a blue square", clip, strength=0.0, **KW)
    padded = np.concatenate([clip, clip[-1:].repeat(2, 0)])
    assert out.frames.shape == clip.shape
    assert np.array_equal(out.frames, roundtrip(pipe, padded)[:7])
    half = modes.edit(pipe, "a blue square", clip, strength=0.5, **KW).frames
    full = modes.edit(pipe, "a blue square", clip, strength=1.0, **KW).frames
    rt = roundtrip(pipe, padded)[:7]
    assert psnr(half, rt) > psnr(full, rt)  # more strength, further from the input


def test_forward_extension_keeps_the_source_and_seams(pipe):
    clip = frames(10)
    out = modes.extend(pipe, "the circle keeps going", clip, 30, **KW)
    assert out.frames.shape == (40, 16, 16, 3)
    assert np.array_equal(out.frames[:10], clip)  # the source passes through untouched
    windows = plan_windows([Shot("x", 30)], pipe.max_frames, pipe.overlap_frames, 4, first_cond=5)
    assert out.seams == tuple(10 + w.start for w in windows) and out.seams[0] == 10
    assert all(w.cond_frames == 5 for w in windows)


def test_backward_extension_and_connect(pipe):
    clip = frames(9)
    n_in = len(modes._inner_frames(pipe, clip))  # the video's first frames, given as the tail condition
    back = modes.extend(pipe, "before", clip, 6, backward=True, **KW)
    assert back.frames.shape == (15, 16, 16, 3) and back.seams == (6,)
    # the source passes through, but for its first frames, which fade in from the pass's decode of them
    assert np.array_equal(back.frames[6 + n_in:], clip[n_in:])
    assert not np.array_equal(back.frames[6:6 + n_in], clip[:n_in])
    raw = modes.extend(pipe, "before", clip, 6, backward=True, blend=False, **KW)
    assert np.array_equal(raw.frames[6:], clip)
    a, b = frames(9, seed=1), frames(9, seed=2)
    out = modes.connect(pipe, "a into b", a, b, 4, **KW)
    n_gen = out.seams[1] - out.seams[0]
    assert out.seams[0] == 9 and n_gen >= 4
    assert np.array_equal(out.frames[:9], a) and np.array_equal(out.frames[-9 + n_in:], b[n_in:])
    # both ends of the transition pass are conditions: head (2 latents of a) and tail (b's start)
    assert out.settings.condition_frames[:2] == (0, 1) and out.settings.condition_frames[-1] == \
        out.settings.latent_shape[2] - 1


def test_loop_appends_a_transition_back_to_the_start(pipe):
    clip = frames(9)
    n_in = len(modes._inner_frames(pipe, clip))
    out = modes.loop(pipe, "round", 4, video=clip, **KW)
    assert np.array_equal(out.frames[n_in:9], clip[n_in:]) and len(out.frames) >= 13
    raw = modes.loop(pipe, "round", 4, video=clip, blend=False, **KW)
    assert np.array_equal(raw.frames[:9], clip)
    # the start fades in from the transition pass's own decode of it: the closure step shrinks
    assert seam_report(out.frames, out.seams[-1:]).color_seam < \
        seam_report(raw.frames, raw.seams[-1:]).color_seam
    assert out.seams == (9, len(out.frames))  # the loop's seam is the end flowing into frame 0
    made = modes.loop(pipe, "round", 16, **KW)
    assert len(made.frames) == 16


def test_crossfade_goes_from_made_to_given():
    made, given = np.zeros((3, 2, 2, 3), np.uint8), np.full((3, 2, 2, 3), 200, np.uint8)
    out = modes.crossfade(made, given)
    assert [int(f[0, 0, 0]) for f in out] == [50, 100, 150]  # weights 1/4, 2/4, 3/4 of the given frames


def test_interpolation_places_keyframes(pipe):
    keys = [frames(1, seed=s)[0] for s in (0, 1, 2)]
    out = modes.interpolate(pipe, "morph", keys, num_frames=17, **KW)
    assert out.key_frames == (0, 8, 16) and out.settings.condition_frames == (0, 2, 4)
    assert psnr(out.frames[0], roundtrip(pipe, keys[0][None])[0]) > 45
    timed = modes.interpolate(pipe, "morph", keys[:2], key_times=[0.0, 1.0], **KW)
    assert timed.key_frames == (0, 8) and len(timed.frames) == 9
    with pytest.raises(InputError, match="conditions fill the whole pass"):
        modes.interpolate(pipe, "x", keys[:2], key_times=[0.0, 0.5], **KW)
    with pytest.raises(InputError, match="keyframes out of order"):
        modes.interpolate(pipe, "x", keys, key_times=[0.0, 1.0, 0.5], **KW)
    with pytest.raises(InputError, match="same latent frame"):
        modes.interpolate(pipe, "x", keys, key_times=[0.0, 1.0, 1.1], **KW)


def test_wrong_size_inputs_are_resized_with_a_note(pipe):
    out = modes.image_to_video(pipe, "x", frames(1, size=32)[0], 5, **KW)
    assert out.frames.shape[1:3] == (16, 16) and "resized" in out.notes[0] and "32x32" in out.notes[0]


def test_windowed_generation_is_bounded_per_pass_and_any_length(pipe):
    seen = []
    hook = pipe.transformer.register_forward_hook(lambda m, a, o: seen.append(tuple(a[0].shape)))
    try:
        short = pipe("a long walk", num_frames=40, **KW)
        n_short = len(seen)
        long = pipe("a long walk", num_frames=120, **KW)
    finally:
        hook.remove()
    assert short.frames.shape[0] == 40 and long.frames.shape[0] == 120
    # every pass holds at most one window, whatever the length: memory does not grow with it
    assert max(s[2] for s in seen) <= pipe.scheduler.max_latent_frames
    assert len(seen) > 2 * n_short  # a longer video is more passes, not bigger ones
    windows = plan_windows([Shot("x", 120)], pipe.max_frames, pipe.overlap_frames)
    assert long.seams == tuple(w.start for w in windows[1:]) and long.settings.windows == len(windows)
    assert sum(w.new_frames for w in windows) == 120


def test_window_heads_are_the_previous_windows_end(pipe):
    """Each window after the first holds clean the re-encoded last frames of the video so far."""
    calls = []
    real = type(pipe).__call__

    def spy(self, prompt, **kw):
        out = real(self, prompt, **kw)
        calls.append((kw.get("condition"), out.frames))
        return out

    type(pipe).__call__ = spy
    try:
        video = pipe("a walk", num_frames=40, **KW).frames
    finally:
        type(pipe).__call__ = real
    passes = calls[:-1]  # the outer call returns (and is recorded) last
    assert passes[0][0] is None and all(c is not None for c, _ in passes[1:])
    windows = plan_windows([Shot("x", 40)], pipe.max_frames, pipe.overlap_frames)
    for (cond, _), w in zip(passes[1:], windows[1:], strict=True):
        z = pipe.encode_frames(video[w.start - w.cond_frames:w.start])
        assert torch.allclose(cond.latent[:, :, :z.shape[2]], z, atol=1e-5)
        assert cond.frames == list(range(z.shape[2]))


def test_per_window_prompts(pipe):
    a = pipe(["a red circle", "a blue square"], num_frames=30, **KW)
    b = pipe(["a red circle", "a red circle"], num_frames=30, **KW)
    assert len(a.frames) == 30 and a.seams == b.seams
    assert np.array_equal(a.frames[:15], b.frames[:15]) and not np.array_equal(a.frames[15:], b.frames[15:])


def test_plan_windows_bookkeeping():
    ws = plan_windows([Shot("a", 30), Shot("b", 10, continuous=False), Shot("c", 8)], 21, 5)
    starts = [w.start for w in ws]
    assert starts == sorted(starts) and sum(w.new_frames for w in ws) == 48
    assert [w.prompt for w in ws] == ["a", "a", "b", "c"]
    assert [w.cond_frames for w in ws] == [0, 5, 0, 5] and ws[2].reseed
    assert all(w.pixel_frames <= 21 and (w.pixel_frames - 1) % 4 == 0 for w in ws)
    assert all(w.pixel_frames >= w.cond_frames + w.new_frames for w in ws)
    with pytest.raises(InputError, match="shot 1 has no frames"):
        plan_windows([Shot("a", 0)], 21, 5)


def test_condition_guidance_changes_only_with_a_scale(pipe):
    image = frames(1)[0]
    a = modes.image_to_video(pipe, "x", image, 9, **KW).frames
    b = modes.image_to_video(pipe, "x", image, 9, condition_guidance=1.0, **KW).frames
    c = modes.image_to_video(pipe, "x", image, 9, condition_guidance=3.0, **KW)
    assert np.array_equal(a, b) and not np.array_equal(a, c.frames)
    assert c.settings.condition_guidance == 3.0
    assert np.array_equal(c.frames[0], a[0])  # the condition frame itself is the same either way


def test_a_too_long_single_pass_mode_is_refused(pipe):
    with pytest.raises(InputError, match="a pass holds 21"):
        modes.connect(pipe, "x", frames(9), frames(9), 20, **KW)
    small = dataclasses.replace(pipe.scheduler)
    assert small == pipe.scheduler
