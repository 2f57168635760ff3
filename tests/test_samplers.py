"""Solvers with known answers, guidance, determinism."""

from __future__ import annotations

import math

import pytest
import torch

from kino.diffusion.conditioning import conditioned
from kino.diffusion.samplers import Solver, model_calls, solve, timesteps
from kino.errors import InputError


def linear_field(x, t):
    return 2.0 * x  # dx/dt = 2x: from t=1 to t=0, x(0) = x(1) * exp(-2)


def error(solver: Solver, steps: int) -> float:
    x1 = torch.tensor([1.0, -0.5])
    x0 = solve(linear_field, x1, timesteps(steps), solver)
    return float((x0 - x1 * math.exp(-2.0)).abs().max())


def test_euler_first_order_heun_second_order():
    e10, e20 = error(Solver.EULER, 10), error(Solver.EULER, 20)
    h10, h20 = error(Solver.HEUN, 10), error(Solver.HEUN, 20)
    m10, m20 = error(Solver.MIDPOINT, 10), error(Solver.MIDPOINT, 20)
    assert 1.7 < e10 / e20 < 2.3
    assert 3.5 < h10 / h20 < 4.5
    assert 3.5 < m10 / m20 < 4.5
    assert h10 < e10 / 5


def test_straight_path_is_exact_with_euler():
    # the flow of x_t = (1 - t) x0 + t e has constant velocity e - x0: one Euler step lands on x0
    x0, e = torch.randn(3), torch.randn(3)
    out = solve(lambda x, t: e - x0, e, timesteps(1, shift=3.0))
    assert torch.allclose(out, x0, atol=1e-6)


def test_timesteps():
    t = timesteps(4)
    assert t.dtype == torch.float32 and torch.allclose(t, torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0]))
    assert bool((timesteps(4, shift=3.0)[1:-1] > t[1:-1]).all())
    with pytest.raises(InputError):
        timesteps(0)
    assert model_calls(Solver.HEUN, 10) == 20 and model_calls(Solver.EULER, 10) == 10


def test_callback_and_determinism():
    seen = []
    x = torch.randn(4, generator=torch.Generator().manual_seed(1))
    a = solve(linear_field, x, timesteps(5), Solver.HEUN, callback=lambda s, n: seen.append((s, n)))
    b = solve(linear_field, x.clone(), timesteps(5), Solver.HEUN)
    assert seen == [(i, 5) for i in range(1, 6)] and torch.equal(a, b)


def test_guidance_formula_and_batching():
    calls = []

    def model(x, t, text, text_mask):
        calls.append(x.shape[0])
        return text.sum(dim=(1, 2))[:, None, None, None, None] * torch.ones_like(x)  # v = sum of text tokens

    cond = {"text": torch.full((1, 2, 1), 1.0), "text_mask": torch.ones(1, 2, dtype=torch.bool)}
    uncond = {"text": torch.full((1, 3, 1), 0.5), "text_mask": torch.ones(1, 3, dtype=torch.bool)}
    x = torch.zeros(1, 1, 2, 1, 1)  # (B, C, T, H, W)
    v = conditioned(model, cond, uncond, 3.0, None)(x, torch.tensor(0.5))
    # v_c = 2, v_u = 1.5 (the cond text is padded with zeros to 3 tokens): 1.5 + 3 * 0.5 = 3
    assert torch.allclose(v, torch.full_like(x, 3.0)) and calls == [2]
    v1 = conditioned(model, cond, uncond, 1.0, None)(x, torch.tensor(0.5))
    assert torch.allclose(v1, torch.full_like(x, 2.0)) and calls == [2, 1]
