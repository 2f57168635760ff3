"""Rectified flow: the path, its target, timestep sampling and the shift."""

from __future__ import annotations

import pytest
import torch

from kino.diffusion.flow import (
    FlowConfig,
    TimestepSampling,
    drop_captions,
    flow_loss,
    flow_path,
    sample_t,
    shift_time,
    token_shift,
)
from kino.errors import InputError


def test_path_endpoints_and_velocity():
    x0, e = torch.randn(2, 3, 4, 2, 2), torch.randn(2, 3, 4, 2, 2)
    assert torch.allclose(flow_path(x0, e, torch.zeros(2)).x_t, x0)
    assert torch.allclose(flow_path(x0, e, torch.ones(2)).x_t, e)
    s = flow_path(x0, e, torch.tensor([0.25, 0.5]))
    assert torch.allclose(s.target, e - x0)
    # the target is the derivative of x_t in t
    h = 1e-3
    fd = (flow_path(x0, e, torch.tensor([0.25 + h, 0.5 + h])).x_t - s.x_t) / h
    assert torch.allclose(fd, s.target, atol=1e-2)


def test_per_frame_t_keeps_clean_frames():
    x0, e = torch.randn(1, 3, 4, 2, 2), torch.randn(1, 3, 4, 2, 2)
    s = flow_path(x0, e, torch.tensor([[0.0, 0.5, 0.5, 1.0]]))
    assert torch.equal(s.x_t[:, :, 0], x0[:, :, 0]) and torch.allclose(s.x_t[:, :, 3], e[:, :, 3])
    w = torch.tensor([[0.0, 1.0, 1.0, 1.0]])
    pred = s.target.clone()
    pred[:, :, 0] += 5.0  # errors on the clean frame do not count when its weight is 0
    assert flow_loss(pred, s, w) < 1e-10 and flow_loss(pred, s) > 1.0
    with pytest.raises(InputError):
        flow_path(x0, e, torch.rand(1, 3))


def test_shift():
    t = torch.linspace(0, 1, 11)
    assert torch.allclose(shift_time(t, 1.0), t)
    s3 = shift_time(t, 3.0)
    assert s3[0] == 0 and s3[-1] == 1 and bool((s3[1:-1] > t[1:-1]).all())  # towards noise
    assert token_shift(256, 1.0, 256) == 1.0
    assert token_shift(1024, 1.0, 256) == pytest.approx(2.0)  # grows with sqrt(tokens)
    assert token_shift(10**9, 1.0, 256, max_shift=6.0) == 6.0 and token_shift(10, 1.0, 256) == 1.0


def test_timestep_sampling():
    g = torch.Generator().manual_seed(0)
    ln = sample_t((20000,), FlowConfig(), generator=g)
    un = sample_t((20000,), FlowConfig(sampling=TimestepSampling.UNIFORM), generator=g)
    assert 0 < ln.min() and ln.max() < 1 and un.dtype == torch.float32
    # logit-normal puts more mass in the middle than uniform
    mid = lambda t: ((t > 0.3) & (t < 0.7)).float().mean()  # noqa: E731
    assert mid(ln) > mid(un) + 0.1
    assert sample_t((20000,), FlowConfig(), shift=3.0, generator=g).mean() > ln.mean() + 0.1
    with pytest.raises(InputError):
        FlowConfig(caption_dropout=1.0)


def test_drop_captions():
    caps = ["a"] * 1000
    dropped = drop_captions(caps, 0.2, torch.Generator().manual_seed(0))
    assert 150 < dropped.count("") < 250
    assert drop_captions(caps, 0.0) == caps


def test_temporal_term_weighs_frame_to_frame_change_of_the_error():
    """temporal_weight adds the mean squared change of the error between latent frames 1..T-1: an error that
    is the same in every frame from 1 on costs nothing extra, one that alternates costs 4x its square; frame
    0 (its own code in a causal VAE) is left out, and a condition frame's error counts as zero."""
    from kino.diffusion.flow import PathSample

    b, c, t, h, w = 2, 3, 5, 2, 2
    target = torch.zeros(b, c, t, h, w)
    path = PathSample(x_t=target, target=target, t=torch.full((b,), 0.5))
    steady = torch.ones(b, c, t, h, w)
    steady[:, :, 0] = 5.0  # frame 0 differs: not part of the term
    assert flow_loss(steady, path, temporal_weight=2.0) == pytest.approx(flow_loss(steady, path).item())
    alt = torch.ones(b, c, t, h, w) * torch.tensor([0.0, 1.0, -1.0, 1.0, -1.0])[None, None, :, None, None]
    base = flow_loss(alt, path).item()
    assert base == pytest.approx(0.8)  # 4 of 5 frames have squared error 1
    assert flow_loss(alt, path, temporal_weight=0.5).item() == pytest.approx(base + 0.5 * 4.0)
    # frames 1 and 2 are conditions (weight 0): their errors are zero in the term; pair (1, 2) is not trained
    fw = torch.tensor([[1.0, 0.0, 0.0, 1.0, 1.0]] * b)
    trained = flow_loss(alt, path, fw).item()
    assert trained == pytest.approx(2 / 3)  # frames 0, 3, 4 trained: 0, 1, 1
    # pairs (2, 3): (1 - 0)^2 = 1; (3, 4): (-1 - 1)^2 = 4 -> mean 2.5
    assert flow_loss(alt, path, fw, temporal_weight=1.0).item() == pytest.approx(trained + 2.5)
    with pytest.raises(InputError, match="temporal_weight"):
        FlowConfig(temporal_weight=-1.0)
    assert FlowConfig.from_options(["temporal_weight=0.5"]).temporal_weight == 0.5
