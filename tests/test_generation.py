"""The shared request-to-file path: policy, enhancement, pipeline, and a signed, watermarked output."""

from __future__ import annotations

import pytest

from kino.errors import InputError, PolicyError
from kino.generation import GenerationRequest, generate_file
from kino.io import probe
from kino.pipeline import KinoPipeline, SchedulerConfig


@pytest.fixture(scope="module")
def pipe():
    return KinoPipeline.from_presets(scheduler=SchedulerConfig(num_inference_steps=2, seconds=1.0))


@pytest.fixture(autouse=True)
def config_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("KINO_CONFIG_DIR", str(tmp_path / "cfg"))
    for name in ("KINO_C2PA_CERT", "KINO_C2PA_KEY", "KINO_SAFETY_POLICY", "KINO_ENHANCE_BACKEND"):
        monkeypatch.delenv(name, raising=False)


def test_enhanced_signed_and_watermarked(pipe, tmp_path):
    from kino.safety.verify import Outcome, verify_file

    seen = []
    res = generate_file(
        pipe, GenerationRequest("a red ball bouncing", seed=1), tmp_path / "a.mp4", on_prompt=seen.append
    )
    assert res.enhanced and res.model_prompt != res.prompt and seen == [res.model_prompt]
    assert res.output.settings.prompt == res.model_prompt  # the model saw the enhanced caption
    info = probe(res.path)
    assert (info.width, info.height, info.num_frames) == (64, 64, 8)
    assert res.report.c2pa_signed and res.report.watermark_id
    assert res.report.frame_review == "not configured"  # never claims a review that did not happen
    assert verify_file(res.path).outcome is Outcome.OK


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
    assert not (tmp_path / "c.mp4").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name != "cfg"] == []  # no temporary file either


def test_empty_prompt():
    with pytest.raises(InputError, match="empty"):
        GenerationRequest("  ")
