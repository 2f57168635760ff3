"""ODE solvers for the flow from noise (t = 1) to data (t = 0).

The model predicts, the solver steps: a solver only sees `velocity(x, t) -> v`. Scheduler arithmetic
(timesteps, step sizes, the state x) is float32 whatever the model's dtype. Guidance (text and condition)
lives in one place, kino.diffusion.conditioning.conditioned, which builds the velocity a solver sees.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

import torch
from torch import Tensor

from kino.diffusion.flow import shift_time
from kino.errors import InputError

Velocity = Callable[[Tensor, Tensor], Tensor]  # (x (B, ...), t () float32) -> v like x


class Solver(StrEnum):
    """ODE solvers; Heun and midpoint are second order and cost two model calls per step."""

    EULER = "euler"
    HEUN = "heun"
    MIDPOINT = "midpoint"


def timesteps(num_steps: int, shift: float = 1.0, device: torch.device | str = "cpu") -> Tensor:
    """num_steps + 1 float32 times from 1 (noise) to 0 (data), warped by the time shift."""
    if num_steps < 1:
        raise InputError(f"the number of steps must be at least 1, got {num_steps}")
    if shift <= 0:
        raise InputError(f"shift must be positive, got {shift}")
    t = torch.linspace(1.0, 0.0, num_steps + 1, dtype=torch.float64)
    return shift_time(t, shift).to(device=device, dtype=torch.float32)


def model_calls(solver: Solver, num_steps: int) -> int:
    """How many velocity evaluations a solve takes."""
    return num_steps * (1 if Solver(solver) == Solver.EULER else 2)


def solve(velocity: Velocity, x: Tensor, times: Tensor, solver: Solver = Solver.EULER,
          callback: Callable[[int, int], None] | None = None) -> Tensor:
    """Integrate dx/dt = velocity(x, t) along `times` (decreasing) from x at times[0]; returns float32.

    callback(step, total) is called after each step with step = 1..total.
    """
    solver = Solver(solver)
    x = x.float()
    total = len(times) - 1
    for i in range(total):
        t, t_next = times[i], times[i + 1]
        dt = t_next - t  # negative: towards data
        v = velocity(x, t).float()
        if solver == Solver.EULER:
            x = x + dt * v
        elif solver == Solver.HEUN:  # trapezoid: average the slopes at both ends
            x_pred = x + dt * v
            v_next = velocity(x_pred, t_next).float()
            x = x + dt * 0.5 * (v + v_next)
        else:  # midpoint: the slope half way
            x_mid = x + 0.5 * dt * v
            x = x + dt * velocity(x_mid, t + 0.5 * dt).float()
        if callback is not None:
            callback(i + 1, total)
    return x
