"""`kino train vae` into a folder that already holds a run: refused in one line unless --resume."""

from __future__ import annotations

import torch

from kino.train.checkpoint import list_checkpoints

TINY = dict(sizes=((32, 32),), num_frames=(5,), image_prob=0.5, batch_size=1, stats_clips=1, warmup=1,
            log_every=100)


def _snapshot(run_dir):
    """Every file under the run folder with its bytes: what a refused start must leave as it was."""
    return {p.relative_to(run_dir): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}


def test_a_new_vae_run_over_an_old_one_is_refused(run, tmp_path):
    from kino.train.vae import VAETrainConfig, train_vae

    torch.set_num_threads(1)
    out = tmp_path / "run"
    first = train_vae(VAETrainConfig(steps=1, checkpoint_every=1, **TINY), out, progress=False)
    before = _snapshot(out)

    for extra in ([], ["--init-from", str(first)]):  # a fresh start, or a start from other weights: new runs
        code, stdout, stderr = run(["train", "vae", "--out", out, "--steps", "1", "--batch-size", "1",
                                    "--threads", "1", *extra])
        lines = stderr.strip().splitlines()
        assert code == 2, stderr
        assert len(lines) == 1 and lines[0].startswith("kino: error:"), stderr
        assert "already holds a run at step-00000001" in lines[0] and "--resume" in lines[0], stderr
        assert "--overwrite" in lines[0], stderr
        assert _snapshot(out) == before  # nothing rewritten, nothing added

    code, stdout, stderr = run(["train", "vae", "--out", out, "--steps", "1", "--threads", "1", "--resume"])
    assert code == 0, stderr
    assert f"saved {first}" in stdout  # resuming a finished run returns its checkpoint
    assert list_checkpoints(out) == [first]

    # --overwrite replaces the run: its old checkpoints go, the new run's stay
    code, stdout, stderr = run(["train", "vae", "--out", out, "--steps", "2", "--batch-size", "1",
                                "--checkpoint-every", "2", "--threads", "1", "--overwrite"])
    assert code == 0, stderr
    assert [p.name for p in list_checkpoints(out)] == ["step-00000002"]
