"""Outputs are not replaced without --overwrite (issue 16 #24), refused before any model loads; `--force`
stays a hidden alias of `kino model init/export`."""

from __future__ import annotations

import numpy as np
import pytest

from kino.io import write_video


@pytest.fixture
def existing(tmp_path):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"mine")
    write_video(tmp_path / "in.mp4", np.zeros((5, 64, 64, 3), np.uint8), fps=8)
    return out


@pytest.mark.parametrize("argv", [
    ["generate", "a red ball"],
    ["extend", "{in}", "more"],
    ["loop", "a red ball"],
    ["edit", "{in}", "a blue ball"],
    ["connect", "{in}", "{in}"],
    ["vae", "reconstruct", "{in}"],
], ids=lambda a: a[0] if a[0] != "vae" else "vae reconstruct")
def test_existing_output_is_refused(run, existing, argv):
    argv = [a.replace("{in}", str(existing.parent / "in.mp4")) for a in argv]
    code, _, err = run([*argv, "-o", str(existing), "--model", str(existing.parent / "no-model")])
    assert code == 2 and "already exists; pass --overwrite" in err, err  # before the (missing) model is looked at
    assert existing.read_bytes() == b"mine"


def test_model_init_force_is_a_hidden_alias(run, tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    code, _, err = run(["model", "init", str(d)])
    assert code == 2 and "--overwrite" in err
    code, _, err = run(["model", "init", str(d), "--force"])
    assert code == 0, err
    code, out, _ = run(["model", "init", "--help"])
    assert "--overwrite" in out and "--force" not in out
