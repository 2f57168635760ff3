"""Two processes on the CPU (torchrun, gloo) train as one process with the same global batch, for DDP
and FSDP2; their sharded (DCP) checkpoint reloads in one process with the same weights."""

from __future__ import annotations

import pytest
import torch
from train_helpers import DIT, cli_args, losses, save_parts, tiny_vae, torchrun, train_cfg

from kino.models.text import TextEncoder
from kino.train.dit import DiTTrainer
from kino.train.loop import train_dit


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One process accumulating 2 micro-batches of 2: the global batch of 2 ranks x 1 micro-batch of 2."""
    tmp = tmp_path_factory.mktemp("ref")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = train_cfg(steps=2, grad_accum=2)
        train_dit(cfg, tiny_vae(), tmp / "run", model_config=DIT, tensorboard=False)
    finally:
        torch.set_num_threads(threads)
    return tmp, cfg


def load_single(cfg, run) -> DiTTrainer:
    """A fresh single-process trainer resumed from run's latest checkpoint."""
    trainer = DiTTrainer(cfg, tiny_vae(), TextEncoder(), model_config=DIT)
    assert trainer.resume(run / "checkpoints")
    return trainer


@pytest.mark.slow
@pytest.mark.parametrize("parallel", ["ddp", "fsdp"])
def test_two_processes_match_one(parallel, reference, tmp_path):
    ref_dir, ref_cfg = reference
    vae, dit = save_parts(tmp_path)
    cfg = train_cfg(steps=2)  # the same global batch of 4, split over 2 ranks instead of 2 micro-batches
    done = torchrun(2, [*cli_args(vae, dit, tmp_path / "run", cfg), "--parallel", parallel])
    assert done.returncode == 0, done.stderr[-3000:]

    # the loss each step (averaged over ranks) is the single process's
    got, want = losses(tmp_path / "run"), losses(ref_dir / "run")
    assert sorted(got) == [1, 2]
    for step in want:
        assert got[step] == pytest.approx(want[step], rel=1e-5, abs=1e-6)

    # the DCP checkpoint written by 2 ranks loads into 1 process: the weights after the steps match
    ckpt = tmp_path / "run" / "checkpoints" / "step-00000002"
    assert (ckpt / "dcp" / ".metadata").is_file() and (ckpt / "rng-rank00001.pt").is_file()
    two, one = load_single(cfg, tmp_path / "run"), load_single(ref_cfg, ref_dir / "run")
    assert two.step_count == 2
    for name, a, b in [("model", two.model, one.model), ("ema", two.ema, one.ema)]:
        sa, sb = a.state_dict(), b.state_dict()
        for k in sa:
            torch.testing.assert_close(sa[k], sb[k], rtol=1e-4, atol=1e-6, msg=f"{name}.{k}")
    # and the optimizer moments came along (a resumed step needs them)
    sa, sb = two.opt.state_dict()["state"], one.opt.state_dict()["state"]
    assert len(sa) == len(sb) == len(list(one.model.parameters()))
    torch.testing.assert_close(sa[0]["exp_avg_sq"], sb[0]["exp_avg_sq"], rtol=1e-3, atol=1e-9)
