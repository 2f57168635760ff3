"""The GPU sprint script's CPU smoke test (issue 18): prepare, a tiny run, and assemble, end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_sprint.py"


def sprint(*args: str) -> str:
    done = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300,
                          env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "HOME": str(Path.home())})
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_sprint_runs_tiny_on_a_cpu(tmp_path):
    text, out = tmp_path / "sprint", tmp_path / "out"
    sprint("prepare", "--out", str(text), "--count", "3")
    rows = [json.loads(line) for line in (text / "specs.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all(r["caption"] for r in rows)
    sprint("run", "--tiny", "--text", str(text), "--out", str(out), "--device", "cpu", "--workers", "2",
           "--vae-steps", "2", "--dit-steps", "2", "--vae-clips", "4", "--renders-per-spec", "2", "--frames", "9",
           "--vae-batch", "2", "--dit-batch", "2", "--log-every", "1")
    files = sorted(p.name for p in out.iterdir())
    assert files == ["dit.json", "dit.safetensors", "log.jsonl", "summary.json", "vae.json", "vae.safetensors"]
    assert len(files) <= 8 and all(p.stat().st_size < 16 * 2**20 for p in out.iterdir())  # what $OUT returns
    s = json.loads((out / "summary.json").read_text())
    assert s["vae"]["steps"] == 2 and s["dit"]["steps"] == 2 and s["render"]["clips"] == 4 + 3 * 2
    assert s["vae"]["flops_per_step"] > 0 and s["dit"]["flops_per_step"] > 0 and s["dit"]["mfu"] > 0
    assert s["dit"]["latent_shape"] == [8, 3, 16, 16]  # 9 frames at 64x64 through the 4x4x4 VAE
    lines = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    stages = [line["stage"] for line in lines]
    assert stages.count("vae") == 3 and stages.count("dit") == 2 and stages[0] == "render"  # vae: the code's fit too
    kept = next(line["block_code_variance_kept"] for line in lines if "block_code_variance_kept" in line)
    assert 0.5 < kept[0] <= 1.0 and 0.5 < kept[1] <= 1.0  # the PCA of the pool's blocks
    pipe_dir = tmp_path / "pipe"
    sprint("assemble", "--weights", str(out), "--out", str(pipe_dir))
    from kino.pipeline import KinoPipeline

    pipe = KinoPipeline.from_pretrained(pipe_dir)
    assert pipe.vae.config.spatial_factor == 4 and pipe.vae.config.block_code
    assert pipe.transformer.config.in_channels == 8
    assert (pipe.scheduler.base_shift, pipe.scheduler.reference_tokens) == (3.0, 80)  # the run's time shift
    assert pipe.vae.config.latent_scale == "global"
    frames = pipe("a red ball", width=64, height=64, num_frames=1, num_inference_steps=1, seed=0).frames
    assert frames.shape == (1, 64, 64, 3)
