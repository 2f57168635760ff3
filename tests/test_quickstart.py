"""`kino quickstart` (the README's main job) and `kino model export`, in-process through kino.cli.main."""

from __future__ import annotations

import torch

from kino.io import read_video
from kino.pipeline import KinoPipeline, builtin_model_dir


def test_quickstart_writes_a_video_and_says_where(run, tmp_path):
    out = tmp_path / "outputs" / "q.mp4"  # a folder that does not exist yet, like the default outputs/
    code, text, err = run(["quickstart", "-o", str(out)])
    assert code == 0, err
    assert f"wrote {out}" in " ".join(text.split())  # the console may wrap a long path
    frames = read_video(out).frames
    assert frames.ndim == 4 and frames.shape[-1] == 3 and len(frames) > 1
    if (builtin_model_dir() / "model_index.json").is_file():  # the built-in model generated it
        assert "model prompt" in text and "asked attributes met (" in text
        assert frames.shape[1:3] == (64, 64) and len(frames) == 16


def test_export_casts_weights_and_stores_defaults(run, tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    KinoPipeline.from_presets("world-tiny", "world-tiny", seed=1).save_pretrained(src)
    code, text, err = run(["model", "export", str(src), str(dst), "--dtype", "float16", "--steps", "7"])
    assert code == 0, err
    from safetensors.torch import load_file

    state = load_file(str(dst / "transformer" / "model.safetensors"))
    assert {v.dtype for v in state.values() if v.is_floating_point()} == {torch.float16}
    a, b = KinoPipeline.from_pretrained(src), KinoPipeline.from_pretrained(dst)
    assert b.scheduler.num_inference_steps == 7
    for (k, p), q in zip(a.transformer.state_dict().items(), b.transformer.state_dict().values(), strict=True):
        assert torch.allclose(p.half().float(), q.float()), k  # exactly the rounded weights
    code, _, err = run(["model", "export", str(src), str(dst)])
    assert code == 2 and "already exists" in err


def test_export_swaps_in_a_finetuned_decoder_only(run, tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    pipe = KinoPipeline.from_presets("world-tiny", "world-tiny", seed=1)
    pipe.save_pretrained(src)
    tuned = KinoPipeline.from_pretrained(src).vae
    with torch.no_grad():
        tuned.decoder.conv_out.conv.bias.add_(0.25)  # a "fine-tuned" decoder, same encoder
    tuned.save_pretrained(tmp_path / "tuned")
    code, _, err = run(["model", "export", str(src), str(dst), "--dtype", "float32", "--vae",
                        str(tmp_path / "tuned")])
    assert code == 0, err
    got = KinoPipeline.from_pretrained(dst).vae.decoder.conv_out.conv.bias
    assert torch.equal(got, tuned.decoder.conv_out.conv.bias)
    with torch.no_grad():
        tuned.encoder.conv_in.conv.bias.add_(0.1)  # another encoder: another latent space
    tuned.save_pretrained(tmp_path / "other")
    code, _, err = run(["model", "export", str(src), str(tmp_path / "x"), "--vae", str(tmp_path / "other")])
    assert code == 2 and "another encoder" in err and not (tmp_path / "x").exists()
