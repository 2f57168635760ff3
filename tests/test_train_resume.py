"""Kill and resume: a `kino train dit` process SIGKILLed after a checkpoint mid-run, then resumed with
--resume, follows the uninterrupted run's per-step losses within 1e-6 (optimizer, EMA, RNG and data
position all restored)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
import torch
from train_helpers import DIT, cli_args, env, losses, save_parts, tiny_vae, train_cfg

from kino.train.checkpoint import latest_checkpoint
from kino.train.loop import train_dit


@pytest.mark.slow
def test_sigkill_then_resume_follows_the_uninterrupted_run(tmp_path, run):
    vae, dit = save_parts(tmp_path)
    cfg = train_cfg(steps=16, batch_size=2, checkpoint_every=3, ema_decay=0.9)
    args = cli_args(vae, dit, tmp_path / "run", cfg)
    out = tmp_path / "run"

    # 1. start training; SIGKILL it as soon as its first checkpoint is complete
    proc = subprocess.Popen([sys.executable, "-m", "kino", *args], env=env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    first = out / "checkpoints" / "step-00000003" / "state.pt"
    deadline = time.monotonic() + 240
    while not first.exists():
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "no checkpoint after 240 s"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    proc.stderr.close()
    killed = losses(out)
    assert 3 <= max(killed) < cfg.steps  # it really stopped mid-run
    assert not (out / "pipeline").exists()
    start = latest_checkpoint(out / "checkpoints")
    assert start is not None and 3 <= int(start.name.split("-")[1]) < cfg.steps  # where --resume picks up

    # 2. resume to the end: the same command with --resume, in this process (only the kill needs a process;
    # the resume reads everything it restores from the checkpoint). 3. the uninterrupted run, in this process
    # with the same single thread
    threads = torch.get_num_threads()
    try:
        code, _, err = run([*args, "--resume"])  # conftest's `run`: the CLI in this process; --threads 1
        assert code == 0, err[-2000:]
        torch.set_num_threads(1)
        train_dit(cfg, tiny_vae(), tmp_path / "full", model_config=DIT, tensorboard=False)
    finally:
        torch.set_num_threads(threads)
    resumed = losses(out)
    assert sorted(resumed) == list(range(1, cfg.steps + 1))
    full = losses(tmp_path / "full")
    for step in range(1, cfg.steps + 1):
        assert abs(resumed[step] - full[step]) <= 1e-6, (step, resumed[step], full[step])
