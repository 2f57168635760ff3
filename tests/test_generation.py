"""The one request-to-file path: validation before anything loads, defaults resolved in one place,
policy on every prompt and their joined text, enhancement, the model, and a signed, watermarked output."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from kino.errors import InputError, MediaError, PolicyError
from kino.generation import GenerationRequest, Shot, check_request, generate_file, resolve, size_warning
from kino.io import probe, write_video
from kino.pipeline import SchedulerConfig


@pytest.fixture(scope="module")
def pipe(tiny_pipeline):
    return tiny_pipeline(scheduler=SchedulerConfig(num_inference_steps=2, seconds=1.0, trained_sizes=((64, 64),)))


@pytest.fixture(autouse=True)
def clean_env(config_dir):
    return config_dir


def test_enhanced_signed_and_watermarked(pipe, tmp_path):
    from kino.safety.verify import Outcome, verify_file

    seen = []
    res = generate_file(
        pipe, GenerationRequest("a red ball bouncing", seed=1), tmp_path / "a.mp4", on_prompt=seen.append
    )
    assert res.enhanced and res.model_prompt != res.prompt and seen == [res.model_prompt]
    info = probe(res.path)
    assert (info.width, info.height, info.num_frames) == (64, 64, 8)
    assert res.report.c2pa_signed and res.report.watermark_id
    assert res.report.frame_review == "not configured"  # never claims a review that did not happen
    assert verify_file(res.path).outcome is Outcome.OK
    assert res.output.settings["latent_shape"] == [1, 4, 3, 8, 8]  # a JSON list in the manifest


def test_the_model_sees_the_enhanced_prompt(pipe, tmp_path):
    from kino.families.kino import KinoModel

    class Spy(KinoModel):
        def generate(self, request, prompt, seed, callback=None):
            self.seen = (request, prompt, seed)
            return super().generate(request, prompt, seed, callback)

    spy = Spy(pipe)
    res = generate_file(spy, GenerationRequest("a red ball bouncing", seed=4, c2pa=False), tmp_path / "s.mp4")
    request, prompt, seed = spy.seen
    assert prompt == res.model_prompt != "a red ball bouncing" and seed == 4
    assert (request.width, request.height, request.fps, request.seconds, request.steps, request.guidance) == \
        (64, 64, 8.0, 1.0, 2, 4.0)  # resolved from the model's defaults: nothing left None


def test_no_enhance_and_no_c2pa(pipe, tmp_path):
    from kino.safety.verify import Outcome, verify_file

    res = generate_file(
        pipe, GenerationRequest("a red ball bouncing", seed=1, enhance=False, c2pa=False), tmp_path / "b.mp4"
    )
    assert res.model_prompt == "a red ball bouncing" and not res.report.c2pa_signed
    assert verify_file(res.path).outcome is Outcome.NO_CREDENTIALS


def test_refused_prompt_makes_no_video(pipe, tmp_path):
    with pytest.raises(PolicyError) as e:
        generate_file(pipe, GenerationRequest("a nude woman on a beach"), tmp_path / "c.mp4")
    assert e.value.category == "sexual"
    assert [p.name for p in tmp_path.iterdir() if p.name != "cfg"] == []  # no file, no temporary file either


@pytest.mark.parametrize("request_", [
    GenerationRequest("mickey", prompts=("mouse",)),
    GenerationRequest(mode="storyboard", shots=(Shot("mickey", 1.0), Shot("mouse", 1.0, "cut"))),
], ids=["windows", "storyboard"])
def test_a_refused_term_split_over_prompts_is_refused(pipe, tmp_path, request_):
    from kino.safety import check_prompt

    assert check_prompt("mickey").allowed and check_prompt("mouse").allowed  # each part alone passes
    with pytest.raises(PolicyError):
        generate_file(pipe, request_, tmp_path / "split.mp4")
    assert not (tmp_path / "split.mp4").exists()


def test_storyboard_is_a_mode_of_the_request(pipe, tmp_path):
    req = GenerationRequest(mode="storyboard", subject="a red circle", seed=5, width=16, height=16, enhance=False,
                            c2pa=False, shots=(Shot("it rolls left", 1.0), Shot("it rolls right", 0.5, "cut")))
    res = generate_file(pipe, req, tmp_path / "story.mp4")
    assert len(res.output.frames) == 12 and 8 in res.seams
    assert res.prompt == "a red circle. it rolls left | a red circle. it rolls right"
    assert res.output.settings["shots"] == [{"seconds": 1.0, "transition": "continuous"},
                                            {"seconds": 0.5, "transition": "cut"}]


def test_request_round_trips_through_json():
    req = GenerationRequest(mode="interpolate", prompt="p", keyframes=("a.png", "b.png"), key_times=(0, 1.5),
                            width=64, height=48, seed=3)
    again = GenerationRequest(**json.loads(json.dumps(req.to_dict())))
    assert again == req and isinstance(again.keyframes, tuple)
    board = GenerationRequest(mode="storyboard", shots=(Shot("a", 1.0), Shot("b", 2.0, "cut")))
    assert GenerationRequest(**json.loads(json.dumps(board.to_dict()))) == board


@pytest.mark.parametrize(("fields", "message"), [
    ({"prompt": "  "}, "the prompt is empty"),
    ({"width": 0, "height": 0}, "width must be a whole number > 0"),
    ({"width": 64}, "give both width and height"),
    ({"fps": 0}, "--fps must be > 0"),
    ({"steps": 0}, "--steps must be a whole number >= 1"),
    ({"guidance": -1.0}, "--guidance must be >= 0"),
    ({"seconds": math.nan}, "--seconds must be a finite number"),
    ({"seconds": math.inf}, "--seconds must be a finite number"),
    ({"seconds": -2}, "--seconds must be > 0"),
    ({"strength": 1.5, "mode": "edit", "video": "v.mp4"}, "strength must be in [0, 1]"),
    ({"mode": "dance"}, "unknown mode 'dance'; choose one of text, image-to-video"),
    ({"image_only": True, "from_image": "x.png"}, "does not combine with mode image-to-video"),
    ({"mode": "storyboard"}, "a storyboard needs at least one shot"),
])
def test_invalid_values_are_refused_when_the_request_is_built(fields, message):
    with pytest.raises(InputError) as e:
        GenerationRequest(**{"prompt": "a red ball", **fields})
    assert message in str(e.value) and "\n" not in str(e.value)


def test_output_and_inputs_are_checked_without_a_model(tmp_path):
    req = GenerationRequest("a red ball")
    with pytest.raises(InputError, match="is a folder"):
        check_request(req, tmp_path)
    with pytest.raises(InputError, match="content credentials need .mp4 or .png"):
        check_request(req, tmp_path / "x.gif")
    check_request(GenerationRequest("a red ball", c2pa=False), tmp_path / "x.gif")
    with pytest.raises(InputError, match="holds one frame"):
        check_request(GenerationRequest("a red ball", seconds=2, fps=8), tmp_path / "x.png")
    with pytest.raises(InputError, match="not writable"):
        check_request(req, "/proc/x.mp4")
    with pytest.raises(InputError, match="does not exist"):
        check_request(req, tmp_path / "no" / "x.mp4")
    with pytest.raises(MediaError, match="does not exist"):
        check_request(GenerationRequest("more", mode="extend", video=str(tmp_path / "nope.mp4")))
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(MediaError, match="empty"):
        check_request(GenerationRequest("more", mode="extend", video=str(tmp_path / "empty.mp4")))


def test_resolve_fills_every_setting_and_checks_the_size(pipe, tmp_path):
    from kino.families.kino import KinoModel

    d = KinoModel(pipe).defaults
    r = resolve(GenerationRequest("x"), d)
    assert (r.width, r.height, r.fps, r.seconds, r.steps, r.guidance) == (64, 64, 8.0, 1.0, 2, 4.0)
    with pytest.raises(InputError, match="size 70x64 is not a multiple of 16; try 64x64 or 80x64"):
        resolve(GenerationRequest("x", width=70, height=64), d)
    # the interpolation's length follows its last keyframe
    assert resolve(GenerationRequest("x", mode="interpolate", keyframes=("a", "b"), key_times=(0, 1)), d).seconds \
        == 9 / 8
    # a video input keeps its size (no silent crop to the default size); 16 #4
    write_video(tmp_path / "wide.mp4", np.zeros((5, 64, 112, 3), np.uint8), fps=8)
    notes: list[str] = []
    r = resolve(GenerationRequest("more", mode="extend", video=str(tmp_path / "wide.mp4")), d, notes)
    assert (r.width, r.height) == (112, 64) and notes == []
    write_video(tmp_path / "odd.mp4", np.zeros((5, 60, 100, 3), np.uint8), fps=8)
    r = resolve(GenerationRequest("more", mode="edit", video=str(tmp_path / "odd.mp4")), d, notes)
    assert (r.width, r.height) == (96, 64) and "resized to 96x64" in notes[0]


def test_a_size_far_from_training_is_warned_about(pipe):
    from kino.families.kino import KinoModel

    d = KinoModel(pipe).defaults
    assert size_warning(resolve(GenerationRequest("x"), d), d) is None
    warn = size_warning(resolve(GenerationRequest("x", width=1280, height=720), d), d)
    assert "1280x720 is far from the sizes this model was trained at (64x64)" in warn


def test_extend_keeps_the_input_size(pipe, tmp_path):
    clip = (np.random.default_rng(0).random((5, 64, 112, 3)) * 255).astype(np.uint8)
    write_video(tmp_path / "wide.mp4", clip, fps=8)
    req = GenerationRequest("more", mode="extend", video=str(tmp_path / "wide.mp4"), seconds=0.5, enhance=False,
                            c2pa=False, seed=0)
    res = generate_file(pipe, req, tmp_path / "out.mp4")
    assert res.output.frames.shape[1:3] == (64, 112) and probe(res.path).width == 112


def test_a_mode_the_model_cannot_do_is_refused_before_anything_runs(pipe, tmp_path):
    from kino.families.kino import KinoModel

    class TextOnly(KinoModel):
        modes = frozenset({"text"})

        def generate(self, request, prompt, seed, callback=None):
            raise AssertionError("never reached")

    write_video(tmp_path / "in.mp4", np.zeros((5, 64, 64, 3), np.uint8), fps=8)
    req = GenerationRequest("a nude woman on a beach", mode="extend", video=str(tmp_path / "in.mp4"))
    with pytest.raises(InputError, match="cannot do extend; it can do: text"):  # not the policy's refusal
        generate_file(TextOnly(pipe), req, tmp_path / "out.mp4")
    assert not (tmp_path / "out.mp4").exists()
