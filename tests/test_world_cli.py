"""`kino world sample` and `kino world analyze`, in-process through kino.cli.main."""

from __future__ import annotations

import json

import pytest

from kino.cli import main


@pytest.fixture(scope="module")
def sampled(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    with pytest.raises(SystemExit) as e:
        main(
            [
                "world",
                "sample",
                "--n",
                "3",
                "--out",
                str(out),
                "--size",
                "64x48",
                "--seconds",
                "1.5",
                "--seed",
                "4",
            ]
        )
    assert e.value.code == 0
    return out


def test_sample_writes_clips_and_specs(sampled):
    from kino.io import probe
    from kino.world.spec import SceneSpec

    lines = [json.loads(line) for line in (sampled / "specs.jsonl").read_text().splitlines()]
    assert len(lines) == 3
    for d in lines:
        assert set(d) == {"file", "spec", "seed", "captions"}
        assert set(d["captions"]) == {"short", "medium", "detailed"}
        spec = SceneSpec.from_dict(d["spec"])
        assert (spec.width, spec.height, spec.num_frames) == (64, 48, 12)
        info = probe(sampled / d["file"])
        assert (info.width, info.height) == (64, 48)
    assert not [p for p in sampled.iterdir() if p.name.startswith(".")]  # no temp files left


def test_sample_is_deterministic_and_heldout_split(run, tmp_path):
    from kino.world.sampler import is_heldout
    from kino.world.spec import SceneSpec

    for name in ("a", "b"):
        code, _, _ = run(["world", "sample", "--n", "2", "--out", str(tmp_path / name), "--split", "heldout",
                          "--seconds", "0.5"])  # fmt: skip
        assert code == 0
    a, b = ((tmp_path / n / "specs.jsonl").read_text() for n in ("a", "b"))
    assert a == b
    assert all(is_heldout(SceneSpec.from_dict(json.loads(line)["spec"])) for line in a.splitlines())


def test_analyze_prints_a_table_and_the_score(run, sampled):
    d = json.loads((sampled / "specs.jsonl").read_text().splitlines()[0])
    code, out, err = run(
        ["world", "analyze", str(sampled / d["file"]), "--prompt", d["captions"]["medium"]]
    )
    assert code == 0, err
    assert "background" in out and "met" in out
    last = out.strip().splitlines()[-1]
    assert last.startswith("score: ")
    assert 0.0 <= float(last.split()[1]) <= 1.0


def test_analyze_nothing_asked_is_no_score(run, sampled):
    """A prompt outside the world's vocabulary asks for nothing measurable: no "score: 1.000" (finding 5)."""
    d = json.loads((sampled / "specs.jsonl").read_text().splitlines()[0])
    code, out, err = run(["world", "analyze", str(sampled / d["file"]), "-p", "a cat"])
    assert code == 0, err
    assert "score:" not in out
    assert any(line.startswith("nothing measurable was asked") and line.endswith("can check)")
               for line in out.splitlines())  # one line: not hard-wrapped at 80 columns off a terminal (16 #28)
    code, out, _ = run(["world", "analyze", str(sampled / d["file"]), "--json", "-p", "a cat"])
    assert json.loads(out)["score"]["fraction"] is None


def test_analyze_json(run, sampled):
    d = json.loads((sampled / "specs.jsonl").read_text().splitlines()[1])
    code, out, _ = run(
        ["world", "analyze", str(sampled / d["file"]), "--json", "--prompt", "a red ball"]
    )
    assert code == 0
    doc = json.loads(out)
    assert doc["analysis"]["num_frames"] == 12 and doc["analysis"]["width"] == 64
    assert len(doc["analysis"]["objects"]) == doc["analysis"]["count"]
    assert 0.0 <= doc["score"]["fraction"] <= 1.0
    code, out, _ = run(["world", "analyze", str(sampled / d["file"]), "--json"])
    assert "score" not in json.loads(out)


def one_error_line(code: int, out: str, err: str) -> str:
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kino: error:"), err
    assert "Traceback" not in err + out
    return lines[0]


def test_bad_inputs_give_one_line(run, tmp_path):
    line = one_error_line(*run(["world", "analyze", str(tmp_path / "missing.mp4")]))
    assert "no such file" in line
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 50)
    one_error_line(*run(["world", "analyze", str(junk)]))
    line = one_error_line(
        *run(["world", "sample", "--n", "1", "--out", str(tmp_path / "o"), "--size", "70x64"])
    )
    assert "multiple of 8" in line
    line = one_error_line(
        *run(["world", "sample", "--n", "1", "--out", str(tmp_path / "o"), "--size", "big"])
    )
    assert "WxH" in line
    line = one_error_line(
        *run(["world", "sample", "--n", "1", "--out", str(tmp_path / "o"), "--split", "test"])
    )
    assert "train" in line and "heldout" in line
    assert not (tmp_path / "o" / "specs.jsonl").exists()
