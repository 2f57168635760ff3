"""Conditioning masks in training, and the conditioned velocity: known answers for the mechanics."""

from __future__ import annotations

import pytest
import torch

from kino.diffusion.conditioning import (
    Condition,
    ConditionConfig,
    MaskKind,
    conditioned,
    mask_for,
    sample_masks,
)
from kino.diffusion.flow import flow_loss, flow_path
from kino.diffusion.samplers import Solver, solve, timesteps
from kino.errors import InputError


def test_mask_shares_follow_the_config():
    cfg = ConditionConfig(prob=0.6, first=1, last=0, head=1, tail=0, ends=2, keyframes=0, drop=0.25)
    m = sample_masks(4000, 5, cfg, torch.Generator().manual_seed(0))
    used = [k is not None for k in m.kinds]
    assert abs(sum(used) / 4000 - 0.6) < 0.03
    kinds = [k for k in m.kinds if k is not None]
    share = {k: kinds.count(k) / len(kinds) for k in set(kinds)}
    assert set(share) == {"first", "head", "ends"}
    assert abs(share["first"] - 0.25) < 0.03 and abs(share["ends"] - 0.5) < 0.03
    assert abs(float(m.dropped[torch.tensor(used)].float().mean()) - 0.25) < 0.04
    assert not m.dropped[~torch.tensor(used)].any()
    # every mask leaves a frame to generate; unconditioned samples have none
    assert (~m.frames).any(dim=1).all()
    assert not m.frames[~torch.tensor(used)].any()


def test_mask_kinds_place_the_right_frames():
    g = torch.Generator().manual_seed(1)
    assert mask_for(MaskKind.FIRST, 5, g).tolist() == [True, False, False, False, False]
    assert mask_for(MaskKind.LAST, 5, g).tolist() == [False, False, False, False, True]
    assert mask_for(MaskKind.ENDS, 5, g).tolist() == [True, False, False, False, True]
    head = mask_for(MaskKind.HEAD, 5, g, max_k=3)
    k = int(head.sum())
    assert 1 <= k <= 3 and head[:k].all() and not head[k:].any()
    tail = mask_for(MaskKind.TAIL, 5, g, max_k=3)
    k = int(tail.sum())
    assert 1 <= k <= 3 and tail[-k:].all() and not tail[:-k].any()
    assert not mask_for(MaskKind.FIRST, 1, g).any()  # a single image is never conditioned
    assert mask_for(MaskKind.ENDS, 2, g).tolist() == [True, False]


def test_images_stay_unconditioned_and_t2v_stays_in_the_mix():
    m = sample_masks(50, 1, ConditionConfig(prob=1.0), torch.Generator().manual_seed(0))
    assert m.kinds == (None,) * 50
    with pytest.raises(InputError):
        ConditionConfig(prob=1.5)


def test_condition_frames_are_clean_and_out_of_the_loss():
    cfg = ConditionConfig(prob=1.0, first=1, last=0, head=0, tail=0, ends=0, keyframes=0, drop=0.0)
    masks = sample_masks(2, 4, cfg, torch.Generator().manual_seed(0))
    t = masks.timesteps(torch.tensor([0.7, 0.3]))
    assert torch.allclose(t, torch.tensor([[0.0, 0.7, 0.7, 0.7], [0.0, 0.3, 0.3, 0.3]]))
    x0, noise = torch.randn(2, 3, 4, 2, 2), torch.randn(2, 3, 4, 2, 2)
    path = flow_path(x0, noise, t)
    assert torch.equal(path.x_t[:, :, 0], x0[:, :, 0])  # the condition frame is the clean latent
    pred = path.target.clone()
    pred[:, :, 0] += 100.0  # any error on the condition frame does not count ...
    assert float(flow_loss(pred, path, masks.loss_weight())) == 0.0
    pred[:, :, 1] += 1.0  # ... an error on a generated frame does
    assert float(flow_loss(pred, path, masks.loss_weight())) > 0.0


def test_dropped_conditions_are_pure_noise():
    cfg = ConditionConfig(prob=1.0, first=0, last=1, head=0, tail=0, ends=0, keyframes=0, drop=0.999)
    masks = sample_masks(1, 3, cfg, torch.Generator().manual_seed(0))
    assert bool(masks.dropped[0])
    assert torch.allclose(masks.timesteps(torch.tensor([0.4])), torch.tensor([[0.4, 0.4, 1.0]]))


class Recorder(torch.nn.Module):
    """A stand-in velocity model that records its inputs and returns a function of them."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, x, t, text, text_mask=None):
        self.calls.append((x.clone(), t.clone()))
        return x * 0.5 + text.mean(dim=(1, 2))[:, None, None, None, None] + t[:, None, :, None, None]


def test_condition_frames_come_out_exactly_and_the_model_sees_them_clean():
    z = torch.randn(1, 4, 5, 2, 2)
    mask = torch.tensor([True, False, False, False, True])
    cond = Condition(z, mask)
    model = Recorder()
    text = {"text": torch.ones(1, 2, 3), "text_mask": None}
    noise = torch.randn(1, 4, 5, 2, 2)
    for solver in Solver:
        out = solve(conditioned(model, text, None, 1.0, cond), cond.impose(noise), timesteps(4), solver)
        assert torch.equal(out[:, :, mask], z[:, :, mask])
        assert not torch.equal(out[:, :, ~mask], noise[:, :, ~mask])
    x, t = model.calls[0]
    assert torch.equal(x[:, :, 0], z[:, :, 0]) and t[0, 0] == 0.0 and t[0, 1] == 1.0


def test_dual_guidance_formula():
    z = torch.randn(1, 2, 3, 1, 1)
    cond = Condition(z, torch.tensor([True, False, False]))
    noise = torch.randn(1, 2, 3, 1, 1)
    model = Recorder()
    c, u = {"text": torch.full((1, 1, 1), 2.0)}, {"text": torch.zeros(1, 1, 1)}
    x, t = torch.randn(1, 2, 3, 1, 1), torch.tensor(0.6)
    v = conditioned(model, c, u, 3.0, cond, condition_scale=2.0, cond_noise=noise)(x, t)
    xs, ts = model.calls[-1]
    assert xs.shape[0] == 3  # (c_I, c_T), (c_I, no c_T), (no c_I, no c_T)
    assert torch.equal(xs[2, :, 0], noise[0, :, 0]) and ts[2].tolist() == pytest.approx([1.0, 0.6, 0.6])
    v_full, v_img, v_none = (xs[i:i + 1] * 0.5 + [2.0, 0.0, 0.0][i] + ts[i][None, :, None, None] for i in range(3))
    want = v_none + 2.0 * (v_img - v_none) + 3.0 * (v_full - v_img)
    assert torch.allclose(v[:, :, 1:], want[:, :, 1:]) and (v[:, :, 0] == 0).all()


@pytest.mark.parametrize("condition_scale", [1.0, 2.0])
def test_guidance_stops_at_min_t(condition_scale):
    """min_t: above it the guided formula (all branches in one batch); at or below it one call of the prompt's
    branch with the condition frames, so the step takes the conditional velocity and costs one batch row."""
    z = torch.randn(1, 2, 3, 1, 1)
    cond = Condition(z, torch.tensor([True, False, False]))
    noise, x = torch.randn(1, 2, 3, 1, 1), torch.randn(1, 2, 3, 1, 1)
    c, u = {"text": torch.full((1, 1, 1), 2.0)}, {"text": torch.zeros(1, 1, 1)}
    model = Recorder()
    velocity = conditioned(model, c, u, 3.0, cond, condition_scale=condition_scale, cond_noise=noise, min_t=0.3)
    unguided = conditioned(Recorder(), c, u, 3.0, cond, condition_scale=condition_scale, cond_noise=noise)
    above = velocity(x, torch.tensor(0.31))
    assert model.calls[-1][0].shape[0] == (3 if condition_scale != 1.0 else 2)
    assert torch.equal(above, unguided(x, torch.tensor(0.31)))
    for t in (0.29, 0.1):
        v = velocity(x, torch.tensor(t))
        xs, ts = model.calls[-1]
        assert xs.shape[0] == 1 and torch.equal(xs[:, :, 0], z[:, :, 0]) and ts[0].tolist() == pytest.approx([0, t, t])
        want = xs * 0.5 + 2.0 + ts[:, None, :, None, None]  # the prompt's branch alone
        assert torch.allclose(v[:, :, 1:], want[:, :, 1:]) and (v[:, :, 0] == 0).all()
