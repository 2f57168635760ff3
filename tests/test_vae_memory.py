"""Streaming encode/decode runs in memory that does not grow with a clip's length or size.

Each clip runs in its own subprocess (benchmarks/vae_bench.py --probe) that reports ru_maxrss, which
sees torch's allocations (tracemalloc does not). glibc is told to return large freed blocks to the
system (MALLOC_MMAP_THRESHOLD_), so the peak measures live tensors rather than heap fragmentation
(without it, a long stream plateaus ~100 MiB higher after its first chunks: bounded, but noisy).
The model is world-tiny's layout at 1/4 width (`--narrow`), so the test takes seconds.
"""

from __future__ import annotations

import importlib.util
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest


def bench_module(name: str):
    """A script of benchmarks/ as a module, loaded from its file (no sys.path edit)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_peak_memory_is_flat_in_length_and_size():
    probe_subprocess = bench_module("vae_bench").probe_subprocess

    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    clips = [(64, 64, 2, 4), (64, 64, 60, 4), (512, 512, 10, 1)]  # short, 30x longer, 64x the pixels
    with ThreadPoolExecutor(len(clips)) as pool:  # one process each, side by side: each peak is still its own
        short, long, large = pool.map(lambda c: probe_subprocess(*c, narrow=True, env=env), clips)
    assert (short["frames"], long["frames"], large["frames"]) == (9, 241, 9)
    assert long["peak_mb"] <= 1.5 * short["peak_mb"]
    assert large["peak_mb"] <= 1.5 * short["peak_mb"]
    # above the loaded model, a 30x longer clip needs about what the short one needs
    assert long["rise_mb"] <= 1.5 * short["rise_mb"] + 4
