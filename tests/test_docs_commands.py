"""The commands in README.md and docs/*.md run as written from a fresh clone (issue 16, bar 3).

Every `kino ...` line of the Markdown code blocks (fenced, or indented by four spaces) is run in order,
one sandbox folder per document, through the CLI's entry point in this process, at tiny size: training
runs one step, sampling one step, evaluations two prompts (`tiny`). Files a document expects the user to
have (a folder of videos, a clip, a VAE run, a trained DiT run) are made first (`FIXTURES`). A line
that cannot run here is skipped only by a rule of `SKIP`, each with its reason, and every rule must
still match a line (so the list cannot rot).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", ROOT / "DEVELOPERS.md", *sorted((ROOT / "docs").glob("*.md"))]

SKIP: list[tuple[str, str]] = [
    (r"^\./run( setup| test\b.*)?$|^KINO_TORCH=",
     "the setup script itself: it installs the virtual environment (CI runs it on a clean clone); its main "
     "job, kino quickstart, is tests/test_quickstart.py"),
    (r"^bash \.ci/run", "CI itself, on a clean clone"),
    (r"^torchrun ", "several processes or machines; tests/test_train_distributed.py runs the same path "
                    "with 2 processes on the CPU"),
    (r"--device cuda", "needs a CUDA GPU"),
    (r"\bkino serve\b", "a long-running server; tests/test_serve_*.py run it on loopback"),
    (r"--backend openai", "needs an OpenAI-compatible captioning server"),
    (r"\[--", "a synopsis ([optional] parts and placeholders), not a command"),
    (r"--model models/", "an open model (LTX-Video, Wan) the reader has on disk; tests/test_families*.py and "
                         "tests/test_lora*.py run these paths on tiny random-weight folders"),
    (r"runs/my-lora/", "the LoRA that the line before trains on an open model (skipped above)"),
]

KINO = re.compile(r"^(?:\./run |\.venv/bin/)?kino (.*)$")


def commands(doc: Path) -> list[str]:
    """The command lines of `doc`'s code blocks, continuation lines joined, comments dropped."""
    text = doc.read_text(encoding="utf-8")
    blocks = [b for lang, b in re.findall(r"```(\w*)\n(.*?)```", text, re.S)
              if lang in ("", "bash", "sh", "shell", "console")]
    blocks += ["\n".join(m.group(1) for m in re.finditer(r"(?m)^    (\S.*)$", text))]  # indented blocks
    lines = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if re.match(r"^(KINO_TORCH=|\./run|\.venv/bin/|kino |torchrun |bash \.ci)", line):
                lines.append(_uncomment(line))
    return lines


def _uncomment(line: str) -> str:
    """`line` without a trailing ` # comment` (the docs' prompts hold no " # ")."""
    return re.sub(r"\s+#(\s.*)?$", "", line)


def skip_reason(line: str) -> str | None:
    for pattern, reason in SKIP:
        if re.search(pattern, line):
            return reason
    return None


def tiny(argv: list[str]) -> list[str]:
    """`argv` at a size that runs in seconds on a CPU: the docs' meaning, less work."""
    a = list(argv)

    def put(name: str, value: str | None = None) -> None:
        if name in a:
            if value is not None:
                a[a.index(name) + 1] = value
        else:
            a.extend([name] if value is None else [name, value])

    head = a[:2]
    if head == ["train", "dit"]:
        for name, value in (("--steps", "1"), ("--batch-size", "1"), ("--frames", "1"), ("--checkpoint-every", "1"),
                            ("--threads", "1")):
            put(name, value)
        put("--no-tensorboard")
    elif a[0] in ("generate", "extend", "loop", "interpolate", "connect"):
        put("--steps", "1")
        put("--seconds", "0.5")
    elif a[0] == "eval":
        for name, value in (("--steps", "1"), ("--limit", "2"), ("--seeds", "1"), ("--seconds", "0.5")):
            put(name, value)
    elif head == ["data", "prepare"]:
        put("--workers", "1")
    elif head == ["data", "cache"] and "--world" in a:
        put("--world", "2")
    return a


def _clip(path: Path, seed: int) -> None:
    from kino.io import write_video
    from kino.world.render import render
    from kino.world.sampler import sample_spec
    from kino.world.spec import Motion

    spec = sample_spec(np.random.default_rng(seed), width=64, height=64, fps=8.0, num_frames=16)
    spec = replace(spec, objects=tuple(replace(o, motion=Motion.RIGHT) for o in spec.objects))  # moving
    path.parent.mkdir(parents=True, exist_ok=True)
    write_video(path, render(spec, seed=seed), fps=8.0)


def _vae_run(folder: Path) -> None:
    """A `kino train vae` run folder holding the built-in VAE as its one checkpoint."""
    import torch

    from kino.models.vae import CausalVAE
    from kino.pipeline import builtin_model_dir
    from kino.train.checkpoint import save_checkpoint

    vae = CausalVAE.from_pretrained(builtin_model_dir() / "vae")
    save_checkpoint(folder, 1, vae, vae.config, torch.optim.AdamW(vae.parameters()))


def _dit_run(folder: Path) -> None:
    """A `kino train dit` run folder whose pipeline is the built-in model."""
    from kino.pipeline import builtin_model_dir

    folder.mkdir(parents=True)
    (folder / "pipeline").symlink_to(builtin_model_dir(), target_is_directory=True)


def _dit_config(path: Path) -> None:
    import json

    from kino.models.dit import dit_world_tiny
    from kino.pipeline import builtin_model_dir

    z = json.loads((builtin_model_dir() / "vae" / "config.json").read_text())["latent_channels"]  # the VAE _vae_run copies
    path.write_text(json.dumps(dit_world_tiny(in_channels=z, out_channels=z, text_dim=384, depth=1).to_dict()))


FIXTURES = {  # what a document expects the reader to have, by file name
    "data.md": lambda d: [_clip(d / "videos" / f"{i}.mp4", i) for i in range(2)],
    "analyzer.md": lambda d: _clip(d / "clip.mp4", 5),
    "training.md": lambda d: (_vae_run(d / "runs" / "vae"), _dit_config(d / "my-dit.json")),
    "dit.md": lambda d: None,
    "finetuning.md": lambda d: ([_clip(d / "vids" / f"{i}.mp4", i) for i in range(2)],
                                (d / "caps.jsonl").write_text('{"file": "0.mp4", "caption": "a ball moves right"}\n')),
    "eval.md": lambda d: (_dit_run(d / "runs" / "dit"),
                          (d / "my_prompts.jsonl").write_text('{"prompt": "a red ball bouncing"}\n')),
}


def runnable(doc: Path) -> list[str]:
    """The document's command lines that no SKIP rule covers."""
    return [line for line in commands(doc) if skip_reason(line) is None]


# documents with nothing to run (every line under a stated rule, or no command at all) are not
# parametrized, so they do not show up as skipped tests; the rule test below still reads them
RUNNABLE = [doc for doc in DOCUMENTS if runnable(doc)]


@pytest.mark.slow
@pytest.mark.parametrize("doc", RUNNABLE, ids=lambda p: p.name)
def test_documented_commands_run_as_written(doc, run, tmp_path, monkeypatch, config_dir):
    todo = runnable(doc)
    FIXTURES.get(doc.name, lambda d: None)(tmp_path)
    monkeypatch.chdir(tmp_path)
    for line in todo:
        argv = tiny(shlex.split(KINO.match(line).group(1)))
        code, out, err = run(argv)
        assert code == 0, f"{doc.name}: `{line}` (run as {shlex.join(argv)}) exited {code}:\n{err[-2000:]}"


def test_every_skip_rule_is_used_and_every_line_is_a_command():
    assert {"README.md", "data.md", "training.md", "finetuning.md"} <= {d.name for d in RUNNABLE}
    lines = [line for doc in DOCUMENTS for line in commands(doc)]
    assert len(lines) > 20
    for pattern, reason in SKIP:
        assert reason and any(re.search(pattern, line) for line in lines), f"unused skip rule {pattern!r}"
    for line in lines:
        assert skip_reason(line) is not None or KINO.match(line), f"neither run nor skipped: {line}"
