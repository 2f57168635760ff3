"""Each served model's own sizes, default size and length and frame rate on every route: the tiny kino
pipeline (64x64, 1 s at 8 fps; the default) and a tiny LTX-Video (32x32 or 64x32, its 25 fps, 3 s by
default) served at once on loopback; every request names `model: "ltx"`, so a route that took the default
model's values would store or make the wrong size, length or rate. And a restart with other models: a
queued job of a model no longer served fails with a clear error instead of waiting for ever."""

from __future__ import annotations

import base64
import io
import logging
from pathlib import Path

import httpx
import numpy as np
import pytest
from tiny_families import tiny_models  # noqa: F401  (the session fixture)

from kino.io import probe
from kino.serve.app import create_app
from kino.serve.config import ServeConfig
from kino.serve.testing import (
    ThreadServer,
    free_port,
    isolated_env,
    shared_model_dir,
    shared_pipe,
    studio_page,
    wait_video,
    write_plain_mp4,
)

KEY = "sk-kino-served-models"
H = {"Authorization": f"Bearer {KEY}"}
LTX = {"fps": 25.0, "sizes": ["32x32", "64x32"], "default_size": "32x32", "default_seconds": "3"}
TINY = {"fps": 8.0, "sizes": ["64x64"], "default_size": "64x64", "default_seconds": "1"}
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def server(tiny_models, tmp_path_factory):  # noqa: F811
    with isolated_env(tmp_path_factory.mktemp("cfg")):
        kino_dir = shared_model_dir(tmp_path_factory)
        # plain sizes are every model's unless it has NAME= ones: LTX's size multiple is 32
        config = ServeConfig(model_dir=kino_dir, more_models=(Path(f"ltx={tiny_models['ltx']}"),),
                             data_dir=tmp_path_factory.mktemp("serve"), api_keys=(KEY,), steps=2, max_seconds=3.0,
                             sizes=("64x64", "ltx=32x32", "ltx=64x32"), enhance=False)
        app = create_app(config, [shared_pipe(kino_dir)], "tiny")
        with ThreadServer(app, free_port()) as s:
            yield s


@pytest.fixture(scope="module")
def client(server):
    from openai import OpenAI

    return OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def kino_video(client):
    """A finished video of the default (kino) model: 64x64, 8 frames at 8 fps."""
    v = wait_video(client, client.videos.create(prompt="a red circle moves left").id)
    assert v.status == "completed", v.error
    return v


def post(server, path: str, **body) -> dict:
    r = httpx.post(f"{server.url}/v1/videos{path}", headers=H, json=body, timeout=120)
    assert r.status_code == 200, r.text
    return r.json()


def finished(client, tmp_path, queued: dict, size: str, fps: float = LTX["fps"]):
    """Wait for `queued`; its stored size, the file's size and rate, and its stored seconds = frames / fps."""
    v = wait_video(client, queued["id"])
    assert v.status == "completed", v.error
    out = tmp_path / f"{v.id}.mp4"
    client.videos.download_content(v.id).write_to_file(out)
    info = probe(out)
    assert (v.size, f"{info.width}x{info.height}", info.fps) == (size, size, fps)
    assert float(v.seconds) == pytest.approx(info.num_frames / fps, abs=1e-3)
    return v, info


def png_url(seed: int) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def test_models_list_each_models_sizes_defaults_and_fps(server, client, kino_video):
    listed = {m.id: m.model_extra for m in client.models.list()}
    for name, want in (("ltx", LTX), ("tiny", TINY), ("sora-2", TINY)):  # OpenAI's names: the default model's
        assert {k: listed[name][k] for k in want} == want, (name, listed[name])
    assert listed["ltx"]["family"] == "ltx" and listed["ltx"]["max_frames"] == 257
    opts = httpx.get(f"{server.url}/v1/kino/options", headers=H).json()
    assert {k: opts["served"]["ltx"][k] for k in LTX} == LTX
    assert opts["sizes"]["square"] == ["64x64"] and opts["fps"] == 8.0  # the top level: the default model's
    assert (kino_video.size, kino_video.seconds) == ("64x64", "1")


def test_create_json_and_multipart_take_the_chosen_models_defaults(server, client, tmp_path):
    made = post(server, "", prompt="a dog runs on the beach", model="ltx")  # JSON, no size or seconds
    assert (made["size"], made["seconds"]) == ("32x32", "3")
    finished(client, tmp_path, made, "32x32")
    # multipart (as the official client sends an upload), OpenAI's landscape size -> LTX's landscape size
    r = httpx.post(f"{server.url}/v1/videos", headers=H, files={"prompt": (None, "a dog runs"), "model": (None, "ltx"),
                                                                "seconds": (None, "1"), "size": (None, "1280x720")})
    assert r.status_code == 200, r.text
    assert r.json()["size"] == "64x32"
    v, _ = finished(client, tmp_path, r.json(), "64x32")
    # each model offers only its own sizes
    for model, size in (("ltx", "64x64"), ("tiny", "32x32")):
        r = httpx.post(f"{server.url}/v1/videos", headers=H, json={"prompt": "a ball", "model": model, "size": size})
        assert r.status_code == 400 and r.json()["error"]["param"] == "size", r.text
    # a remix keeps its source's model, size and rate
    remix = client.videos.remix(v.id, prompt="a cat sleeps")
    assert remix.model == "ltx" and remix.size == "64x32"
    finished(client, tmp_path, remix.model_dump(), "64x32")


def test_extension_edit_and_connection_of_a_kino_video_on_ltx(server, client, kino_video, tmp_path):
    """The kino video (64x64, 8 frames) given to LTX: LTX's nearest size (32x32, square), its frames at LTX's 25 fps."""
    ext = post(server, "/extensions", prompt="it goes on", seconds="1", video={"id": kino_video.id}, model="ltx")
    assert (ext["size"], float(ext["seconds"])) == ("32x32", pytest.approx(8 / 25 + 1))
    finished(client, tmp_path, ext, "32x32")
    edit = post(server, "/edits", prompt="a blue square", video={"id": kino_video.id}, model="ltx")
    assert (edit["size"], float(edit["seconds"])) == ("32x32", pytest.approx(8 / 25))
    _, info = finished(client, tmp_path, edit, "32x32")
    assert info.num_frames == 8
    both = {"id": kino_video.id}
    conn = post(server, "/connections", prompt="a transition", videos=[both, both], seconds="1", model="ltx")
    assert (conn["size"], float(conn["seconds"])) == ("32x32", pytest.approx(2 * 8 / 25 + 1))
    finished(client, tmp_path, conn, "32x32")
    # an upload is fitted to the chosen model's sizes too (its own 64x32 here; the kino model has only 64x64)
    clip = write_plain_mp4(tmp_path / "up.mp4", 5, 64, 32)
    r = httpx.post(f"{server.url}/v1/videos/extensions", headers=H, data={"seconds": "1", "model": "ltx"},
                   files={"video": clip.read_bytes()}, timeout=120)
    assert r.status_code == 200, r.text
    assert (r.json()["size"], float(r.json()["seconds"])) == ("64x32", pytest.approx(5 / 25 + 1))


def test_loop_interpolation_and_storyboard_on_ltx(server, client, tmp_path):
    loop = post(server, "/loops", prompt="a red ball bounces", model="ltx")  # no size or seconds: LTX's
    assert (loop["size"], loop["seconds"]) == ("32x32", "3")
    finished(client, tmp_path, loop, "32x32")
    inter = post(server, "/interpolations", keyframes=[{"image_url": png_url(0)}, {"image_url": png_url(1)}],
                 key_times=["0", "0.96"], model="ltx")
    assert (inter["size"], float(inter["seconds"])) == ("32x32", pytest.approx(0.96 + 1 / 25))  # a frame at 25 fps
    finished(client, tmp_path, inter, "32x32")
    board = post(server, "/storyboards", model="ltx", shots=[{"prompt": "a red circle", "seconds": "0.5"},
                                                             {"prompt": "a blue square", "seconds": "0.5"}])
    assert board["size"] == "32x32"
    finished(client, tmp_path, board, "32x32")


def test_a_queued_job_of_a_model_no_longer_served_fails_on_restart(tiny_models, tmp_path, tmp_path_factory,  # noqa: F811
                                                                    caplog):
    """Served: tiny and wan; a wan edit waits (wan's worker is stopped) when the server stops. Restarted with
    tiny only, the job fails at once with a clear error (one log line) and its upload is deleted."""
    from openai import OpenAI

    kino_dir = shared_model_dir(tmp_path_factory)
    pipes = [shared_pipe(kino_dir)]
    common = dict(model_dir=kino_dir, data_dir=tmp_path / "data", api_keys=(KEY,), sizes=("32x32",), steps=2,
                  max_seconds=3.0, enhance=False)
    with isolated_env(tmp_path / "cfg"):
        app = create_app(ServeConfig(more_models=(Path(f"wan={tiny_models['wan']}"),), **common), pipes, "tiny")
        with ThreadServer(app, free_port()) as s:
            for w in app.state.service.workers:
                if w.model_name == "wan":
                    w.stop()
                    w.join(timeout=30)
            clip = write_plain_mp4(tmp_path / "clip.mp4", 5, 32, 32)
            r = httpx.post(f"{s.url}/v1/videos/edits", headers=H, data={"prompt": "a dog runs", "model": "wan"},
                           files={"video": clip.read_bytes()}, timeout=120)
            assert r.status_code == 200, r.text
            jid = r.json()["id"]
        uploads = app.state.service.storage.uploads
        assert [f for f in uploads.iterdir() if not f.name.startswith(".")]  # the edit's video waits with it
        with caplog.at_level(logging.WARNING, logger="kino.serve"):
            app = create_app(ServeConfig(**common), pipes, "tiny")
            with ThreadServer(app, free_port()) as s:
                v = OpenAI(base_url=f"{s.url}/v1", api_key=KEY, max_retries=0).videos.retrieve(jid)
    assert v.status == "failed" and v.error.code == "model_not_served", v
    assert v.error.message == "model wan is not served by this server; served: tiny"
    lines = [r.getMessage() for r in caplog.records if "not served" in r.getMessage()]
    assert lines == ["restart: 1 queued jobs failed: model wan is not served by this server (served: tiny)"]
    assert not [f for f in uploads.iterdir() if not f.name.startswith(".")]


def test_studio_offers_the_chosen_models_sizes(server, tmp_path):
    """In Chromium: the aspect and size choices are the picked model's (kino's 64x64; LTX's 32x32 and 64x32)."""
    with studio_page(server.url, KEY, tmp_path / "profile") as page:
        assert page.locator("#aspect option").all_inner_texts() == ["square"]
        assert page.locator("#size option").all_inner_texts() == ["64x64"]
        page.select_option("#model-pick", "ltx")
        assert page.locator("#aspect option").all_inner_texts() == ["square", "landscape"]
        assert page.locator("#size option").all_inner_texts() == ["32x32"]
        page.select_option("#aspect", "landscape")
        assert page.locator("#size option").all_inner_texts() == ["64x32"]
        assert page.locator("#board-size option").all_inner_texts() == ["32x32"]


def test_a_size_a_model_cannot_make_or_that_names_no_served_model_stops_the_start(tiny_models, tmp_path,  # noqa: F811
                                                                                   tmp_path_factory):
    from kino.errors import InputError
    from kino.families import load_model
    from kino.serve.config import split_size

    kino_dir = shared_model_dir(tmp_path_factory)
    more = {"ltx": [load_model(tiny_models["ltx"])]}
    base = dict(model_dir=kino_dir, data_dir=tmp_path / "data", api_keys=(KEY,))
    with pytest.raises(InputError, match=r"--size 48x32 for model ltx \(ltx\): size 48x32 is not a multiple of 32"):
        create_app(ServeConfig(sizes=("64x64", "ltx=48x32"), **base), [shared_pipe(kino_dir)], "tiny", more=more)
    with pytest.raises(InputError, match="--size wan=32x32 names model wan, which is not served; served models are "
                                         "tiny, ltx"):
        create_app(ServeConfig(sizes=("64x64", "wan=32x32"), **base), [shared_pipe(kino_dir)], "tiny", more=more)
    # a plain size is every model's: LTX cannot make 48x48 either
    with pytest.raises(InputError, match="for model ltx"):
        create_app(ServeConfig(sizes=("48x48",), **base), [shared_pipe(kino_dir)], "tiny", more=more)
    assert split_size("wan=832x480") == ("wan", "832x480") and split_size("64x64") == (None, "64x64")
    with pytest.raises(InputError, match="names no model"):
        split_size("=64x64")
