"""DiTConfig.prediction: a network that predicts the clean latent, returned as the velocity (JiT)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from kino.errors import InputError
from kino.models.dit import DiT, DiTConfig, dit_world_tiny_v2

CFG = DiTConfig(in_channels=4, out_channels=4, patch_size=(1, 2, 2), dim=32, depth=1, num_heads=2, ffn_dim=64,
                text_dim=8)


def pair():
    torch.manual_seed(0)
    v = DiT(CFG).eval()
    for p in v.parameters():  # off the zero init, so the output is not trivially zero
        p.data.add_(torch.randn_like(p) * 0.05)
    s = DiT(dataclasses.replace(CFG, prediction="sample")).eval()
    s.load_state_dict(v.state_dict())
    return v, s


def test_sample_prediction_returns_the_velocity_of_its_clean_estimate():
    v, s = pair()
    x = torch.randn(2, 4, 3, 4, 4)
    text = torch.randn(2, 5, 8)
    for t in (torch.tensor([0.7, 0.3]), torch.tensor([[0.0, 0.5, 1.0], [0.2, 0.02, 0.9]])):
        with torch.no_grad():
            x0 = v(x, t, text)  # the same network's raw output
            got = s(x, t, text)
        te = (t[:, None, None, None, None] if t.dim() == 1 else t[:, None, :, None, None]).clamp_min(0.05)
        assert torch.allclose(got, (x - x0) / te, atol=1e-5)
        # the sampler's step x_t - t * v lands on the clean estimate wherever t >= min_t
        if t.dim() == 1:
            assert torch.allclose(x - t[:, None, None, None, None] * got, x0, atol=1e-5)


def test_packed_clips_give_the_batched_velocities():
    _, s = pair()
    x = torch.randn(2, 4, 3, 4, 4)
    t = torch.tensor([[0.1, 0.5, 0.9], [0.6, 0.6, 0.6]])
    text = torch.randn(2, 5, 8)
    with torch.no_grad():
        batched = s(x, t, text)
        packed = s([x[0], x[1]], [t[0], t[1]], text)
    assert torch.allclose(torch.stack(packed), batched, atol=1e-4)


def test_prediction_is_validated_and_v2_predicts_samples():
    with pytest.raises(InputError, match="velocity or sample"):
        DiTConfig(prediction="eps")
    with pytest.raises(InputError, match="min_t"):
        DiTConfig(prediction="sample", min_t=0.0)
    assert dit_world_tiny_v2().prediction == "sample" and DiTConfig().prediction == "velocity"
    assert DiTConfig.from_dict({"in_channels": 4, "out_channels": 4}).prediction == "velocity"  # v1 folders load
