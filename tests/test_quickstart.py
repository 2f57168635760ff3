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
    code, _, err = run(["model", "export", str(src), str(dst), "--guidance-min-t", "1.5"])
    assert code == 2 and "guidance_min_t must be in [0, 1)" in err and not dst.exists()
    code, text, err = run(["model", "export", str(src), str(dst), "--dtype", "float16", "--steps", "7",
                           "--guidance-min-t", "0.6"])
    assert code == 0, err
    from safetensors.torch import load_file

    state = load_file(str(dst / "transformer" / "model.safetensors"))
    assert {v.dtype for v in state.values() if v.is_floating_point()} == {torch.float16}
    a, b = KinoPipeline.from_pretrained(src), KinoPipeline.from_pretrained(dst)
    assert b.scheduler.num_inference_steps == 7 and b.scheduler.guidance_min_t == 0.6
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


def test_export_a_training_checkpoint_with_its_recipe(run, tmp_path):
    """`kino model export RUN/checkpoints/step-N DEST --vae VAE [--weights raw]`: any checkpoint of a run is a
    pipeline, with the EMA (or raw) weights and the run's time shift, fps and sizes as sampling defaults."""
    from safetensors.torch import load_file

    from kino.diffusion.flow import FlowConfig
    from kino.models.dit import DiTConfig
    from kino.models.vae import CausalVAE, VAEConfig
    from kino.train.dit import DiTTrainConfig
    from kino.train.loop import train_dit

    def clips(cfg, start):
        i = start
        while True:
            g = torch.Generator().manual_seed(i)
            yield {"video": torch.rand(3, 5, 16, 16, generator=g) * 2 - 1, "caption": f"clip {i % 3}"}
            i += 1

    torch.manual_seed(0)
    vae = CausalVAE(VAEConfig(latent_channels=4, patch_size=4, widths=(8, 8, 8)))
    vae.save_pretrained(tmp_path / "vae")
    cfg = DiTTrainConfig(steps=2, batch_size=2, lr=1e-3, warmup=1, checkpoint_every=1, ema_decay=0.5, fps=12.0,
                         sizes=((16, 16),), flow=FlowConfig(base_shift=3.0, reference_tokens=8))
    dit = DiTConfig(in_channels=4, out_channels=4, dim=32, depth=1, num_heads=2, ffn_dim=64, text_dim=384)
    run_pipe = train_dit(cfg, vae, tmp_path / "run", data=clips, model_config=dit, tensorboard=False)
    step2 = tmp_path / "run" / "checkpoints" / "step-00000002"
    code, _, err = run(["model", "export", step2, tmp_path / "ema", "--vae", tmp_path / "vae", "--dtype", "float32"])
    assert code == 0, err
    got, want = KinoPipeline.from_pretrained(tmp_path / "ema"), KinoPipeline.from_pretrained(run_pipe)
    assert all(torch.equal(p, q) for p, q in zip(got.transformer.state_dict().values(),
                                                  want.transformer.state_dict().values(), strict=True))
    s = got.scheduler
    assert (s.base_shift, s.reference_tokens, s.fps, s.trained_sizes) == (3.0, 8, 12.0, ((16, 16),))
    code, _, err = run(["model", "export", step2, tmp_path / "raw", "--vae", tmp_path / "vae", "--weights", "raw",
                        "--dtype", "float32"])
    assert code == 0, err
    raw = load_file(str(step2 / "model.safetensors"))
    got = KinoPipeline.from_pretrained(tmp_path / "raw").transformer.state_dict()
    ema = want.transformer.state_dict()
    assert all(torch.equal(got[k], raw[k]) for k in raw)
    assert any(not torch.equal(raw[k], ema[k]) for k in raw)  # EMA 0.5: the two differ
    code, _, err = run(["model", "export", step2, tmp_path / "x"])
    assert code == 2 and "give --vae" in err and not (tmp_path / "x").exists()
    code, _, err = run(["model", "export", tmp_path / "run" / "checkpoints" / "step-00000009", tmp_path / "x"])
    assert code == 2 and "does not exist; give a pipeline folder" in err and "model init" not in err
