"""Storyboards (format, validation, one video, C2PA mode) and the mode commands end to end through the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from kino.errors import InputError
from kino.io import probe, read_video, write_image, write_video
from kino.pipeline import KinoPipeline, SchedulerConfig
from kino.storyboard import Transition, generate_storyboard_file, load_storyboard

GOOD = """\
subject: a red circle
seed: 5
size: 16x16
fps: 8
shots:
  - prompt: the circle rolls left
    seconds: 2
  - prompt: the circle rolls right
    seconds: 1
    transition: cut
  - prompt: the circle stops
    seconds: 1.5
"""


@pytest.fixture(autouse=True)
def config_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("KINO_CONFIG_DIR", str(tmp_path / "cfg"))
    for name in ("KINO_C2PA_CERT", "KINO_C2PA_KEY", "KINO_SAFETY_POLICY", "KINO_ENHANCE_BACKEND"):
        monkeypatch.delenv(name, raising=False)


SCHEDULER = SchedulerConfig(num_inference_steps=2, max_latent_frames=6, width=16, height=16)


@pytest.fixture(scope="module")
def pipe(tiny_pipeline) -> KinoPipeline:
    torch.set_num_threads(1)
    return tiny_pipeline(scheduler=SCHEDULER)


@pytest.fixture(scope="module")
def model_dir(pipe, tmp_path_factory) -> Path:
    return pipe.save_pretrained(tmp_path_factory.mktemp("models") / "tiny")


def test_load_a_good_storyboard(tmp_path):
    (tmp_path / "s.yaml").write_text(GOOD)
    b = load_storyboard(tmp_path / "s.yaml")
    assert [s.seconds for s in b.shots] == [2.0, 1.0, 1.5] and b.seed == 5 and (b.width, b.height) == (16, 16)
    assert [s.transition for s in b.shots] == [Transition.CONTINUOUS, Transition.CUT, Transition.CONTINUOUS]
    assert [s.line for s in b.shots] == [6, 8, 11]
    assert b.prompt_of(b.shots[0]) == "a red circle. the circle rolls left"
    assert load_storyboard({"shots": [{"prompt": "x", "seconds": 1}]}).shots[0].prompt == "x"


@pytest.mark.parametrize("text, message", [
    ("shots: []\n", "line 1: the storyboard has no shots"),
    ("", "the storyboard is empty"),
    ("seed: 1\n", "the storyboard has no shots"),
    ("shots:\n  - prompt: a\n    seconds: 0\n", "line 3: shot 1: seconds must be a number > 0, got 0"),
    ("shots:\n  - prompt: a\n", "line 2: shot 1 needs seconds: how long it lasts"),  # not "got None" (16 #27)
    ("shots:\n  - prompt: a\n    seconds: 1\n  - prompt: b\n    seconds: 1\n    transition: fade\n",
     "line 6: shot 2: transition must be one of cut, continuous, got 'fade'"),
    ("shots:\n  - prompt: ''\n    seconds: 1\n", "line 2: shot 1: prompt must be non-empty text"),
    ("shots:\n  - prompt: a\n    secs: 1\n", "line 3: shot 1: unknown field 'secs'; valid fields are prompt, seconds"),
    ("title: x\nshots: []\n", "line 1: unknown field 'title'"),
    ("shots: [\n", "not valid YAML"),
    ("size: 7x\nshots:\n  - {prompt: a, seconds: 1}\n", "line 1: size '7x' is not WIDTHxHEIGHT"),
])
def test_bad_storyboards_say_where_and_what(tmp_path, text, message):
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(InputError) as e:
        load_storyboard(tmp_path / "bad.yaml")
    assert message in str(e.value) and "\n" not in str(e.value)


def test_storyboard_video_is_one_signed_file_with_shared_seed(pipe, tmp_path):
    from kino.safety.verify import GENERATION_LABEL, Outcome, verify_file

    board = load_storyboard({**_yaml(GOOD)})
    res = generate_storyboard_file(pipe, board, tmp_path / "story.mp4", steps=2)
    assert len(res.output.frames) == 16 + 8 + 12 and probe(res.path).num_frames == 36
    assert 16 in res.seams and 24 in res.seams  # shot boundaries are seams (16 + 8)
    report = verify_file(res.path)
    assert report.outcome is Outcome.OK
    gen = report.manifest.assertion(GENERATION_LABEL)
    assert gen["mode"] == "storyboard" and gen["settings"]["seed"] == 5
    assert [s["transition"] for s in gen["settings"]["shots"]] == ["continuous", "cut", "continuous"]
    # a cut restarts from the shared seed's noise: with one prompt everywhere, the cut shot starts like shot 1
    same = load_storyboard({"size": "16x16", "seed": 5, "shots": [{"prompt": "p", "seconds": 1},
                                                                  {"prompt": "p", "seconds": 1, "transition": "cut"}]})
    out = generate_storyboard_file(pipe, same, tmp_path / "same.mp4", steps=2, c2pa=False).output.frames
    assert np.array_equal(out[:8], out[8:16])


def _yaml(text: str) -> dict:
    import yaml

    return yaml.safe_load(text)


def test_mode_commands_end_to_end(run, model_dir, tmp_path):
    from kino.safety.verify import GENERATION_LABEL, verify_file

    clip = (np.random.default_rng(0).random((9, 16, 16, 3)) * 255).astype(np.uint8)
    write_video(tmp_path / "in.mp4", clip, fps=8)
    write_video(tmp_path / "big.mp4", np.zeros((5, 32, 48, 3), np.uint8), fps=8)
    write_image(tmp_path / "img.png", clip[0])
    m = ["--model", str(model_dir), "--steps", "2", "--no-enhance"]
    cases = [
        (["extend", str(tmp_path / "in.mp4"), "more", "--seconds", "1"], "extend", 17),
        (["extend", str(tmp_path / "in.mp4"), "before", "--seconds", "0.5", "--backward"], "extend", 13),
        (["loop", "--video", str(tmp_path / "in.mp4"), "--seconds", "0.5"], "loop", None),
        (["interpolate", str(tmp_path / "img.png"), str(tmp_path / "in.mp4@1"), "--times", "0,1"], "interpolate", 9),
        (["connect", str(tmp_path / "in.mp4"), str(tmp_path / "big.mp4"), "--seconds", "0.25"], "connect", None),
        (["edit", str(tmp_path / "in.mp4"), "blue", "--strength", "0.3"], "edit", 9),
        (["generate", "a star", "--from-image", str(tmp_path / "img.png"), "--seconds", "1"], "image-to-video", 8),
        (["generate", "a star", "--image-only", "-o", str(tmp_path / "still.png")], "text-to-image", 1),
        (["generate", "a star", "--seconds", "4", "--then", "a moon"], "text-to-video", 32),
    ]
    for i, (args, mode, n) in enumerate(cases):
        out = tmp_path / f"o{i}.mp4"
        argv = [*args, *m] if "-o" in args else [*args, *m, "-o", str(out)]
        code, stdout, err = run(argv)
        assert code == 0, (args, err)
        path = Path(args[args.index("-o") + 1]) if "-o" in args else out
        gen = verify_file(path).manifest.assertion(GENERATION_LABEL)
        assert gen["mode"] == mode, args
        if n is not None:
            assert probe(path).num_frames == n or path.suffix == ".png", (args, probe(path).num_frames)
        if "big.mp4" in args:
            assert "note: the second video is 48x32; resized" in stdout
    assert len(read_video(tmp_path / "o0.mp4").frames) == 17


def test_bad_inputs_are_one_line_and_write_nothing(run, model_dir, tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    write_image(tmp_path / "a.png", np.zeros((16, 16, 3), np.uint8))
    (tmp_path / "none.yaml").write_text("shots: []\n")
    m = ["--model", str(model_dir), "--steps", "2", "--no-enhance"]
    cases = [
        (["interpolate", str(tmp_path / "a.png"), str(tmp_path / "a.png"), "--times", "1,0.5"],
         "keyframes out of order"),
        (["extend", str(tmp_path / "empty.mp4"), "x", "--seconds", "1"], "empty.mp4"),
        (["storyboard", str(tmp_path / "none.yaml")], "has no shots"),
        (["connect", str(tmp_path / "a.png"), str(tmp_path / "a.png"), "--seconds", "9"], "a pass holds"),
        (["loop"], "needs a prompt"),
    ]
    for i, (args, message) in enumerate(cases):
        out = tmp_path / f"bad{i}.mp4"
        code, _, err = run([*args, *([] if args[0] == "loop" and len(args) == 1 else m), "-o", str(out)])
        assert code in (2, 3) and message in err and err.count("\n") == 1, (args, err)
        assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "cfg", "empty.mp4", "none.yaml"] or \
        not any(p.name.startswith("bad") or p.name.startswith(".bad") for p in tmp_path.iterdir())


def test_a_bad_size_says_file_and_line(run, model_dir, tmp_path):
    """Issue 16 #27: the model's size rule, reported where the storyboard set it."""
    story = tmp_path / "s.yaml"
    story.write_text("# a storyboard\nsize: 70x64\nshots:\n  - {prompt: a red ball, seconds: 1}\n")
    code, _, err = run(["storyboard", str(story), "--model", str(model_dir), "-o", str(tmp_path / "o.mp4")])
    assert code == 2 and f"{story} line 2: size 70x64 is not a multiple of" in err, err
