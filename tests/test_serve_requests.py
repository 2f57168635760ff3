"""The server's request is the generation request (issue 17 item 2): every field of every request body
reaches the GenerationRequest the worker runs, and the two bugs the old hand-written path had stay fixed
(interpolation key_times dropped; a loop of a stored video without a size answered 500)."""

from __future__ import annotations

import io
import time

import httpx
import numpy as np
import pytest

from kino.serve import schemas as S
from kino.serve.app import create_app
from kino.serve.config import ServeConfig
from kino.serve.testing import ThreadServer, free_port, shared_model_dir, shared_pipe

KEY = "sk-kino-requests-key"
H = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("KINO_CONFIG_DIR", str(tmp_path_factory.mktemp("cfg")))
    p = tmp_path_factory.mktemp("policy") / "policy.toml"
    p.write_text("watermark = false\n")  # frames compared exactly with a direct generation
    yield p
    mp.undo()


@pytest.fixture(scope="module")
def server(policy, tmp_path_factory):
    model = shared_model_dir(tmp_path_factory)
    config = ServeConfig(data_dir=tmp_path_factory.mktemp("req"), api_keys=(KEY,), enhance=False,
                         safety_policy=policy)
    with ThreadServer(create_app(config, [shared_pipe(model)], "tiny"), free_port()) as s:
        yield s


def wait(url: str, vid: str, timeout: float = 90.0) -> dict:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        v = httpx.get(f"{url}/v1/videos/{vid}", headers=H).json()
        if v["status"] in ("completed", "failed"):
            return v
        time.sleep(0.1)
    raise TimeoutError(vid)


def png(color, size=(64, 64)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def frames_of(url: str, vid: str, folder) -> np.ndarray:
    from kino.io import read_video

    p = folder / f"{vid}.mp4"
    p.write_bytes(httpx.get(f"{url}/v1/videos/{vid}/content", headers=H).content)
    return read_video(p).frames.astype(np.int16)


def test_interpolation_lands_keyframes_at_key_times(server, policy, tmp_path, tmp_path_factory):
    from kino.generation import GenerationRequest, generate_file
    from kino.io import read_video
    from kino.safety import SafetyConfig

    colors = [(220, 20, 20), (20, 220, 20), (20, 20, 220)]
    r = httpx.post(f"{server.url}/v1/videos/interpolations", headers=H,
                   data={"seconds": "2", "size": "64x64", "seed": "7", "key_times[]": ["0", "0.5", "2"]},
                   files=[("keyframes", (f"{i}.png", png(c))) for i, c in enumerate(colors)])
    assert r.status_code == 200, r.text
    v = wait(server.url, r.json()["id"])
    assert v["status"] == "completed", v["error"]
    served = frames_of(server.url, v["id"], tmp_path)

    # the same request run directly, with the key times and without them (keyframes spread evenly)
    paths = []
    for i, c in enumerate(colors):
        paths.append(tmp_path / f"{i}.png")
        paths[-1].write_bytes(png(c))
    pipe, safety = shared_pipe(shared_model_dir(tmp_path_factory)), SafetyConfig.load(policy)
    stored = server.app.state.service.store.get(v["id"]).params["request"]
    runs = {}
    for name, times in (("timed", (0.0, 0.5, 2.0)), ("even", None)):
        req = GenerationRequest(stored["prompt"], mode="interpolate", keyframes=tuple(map(str, paths)), key_times=times,
                                seconds=2.0, width=64, height=64, enhance=False, seed=7)
        generate_file(pipe, req, tmp_path / f"{name}.mp4", safety=safety)
        runs[name] = read_video(tmp_path / f"{name}.mp4").frames.astype(np.int16)
    assert served.shape == runs["timed"].shape
    same, other = np.abs(served - runs["timed"]).mean(), np.abs(runs["timed"] - runs["even"]).mean()
    print(f"served vs timed {same:.3f}, timed vs even {other:.3f}")
    assert other > 10 * max(same, 0.05)  # the server placed the keyframes at 0, 0.5 and 2 s, not evenly
    assert np.abs(served - runs["even"]).mean() > 10 * max(same, 0.05)


def test_loop_of_a_stored_video_without_size(server):
    made = httpx.post(f"{server.url}/v1/videos", headers=H, json={"prompt": "a red ball", "seconds": "1",
                                                                    "size": "112x64"})
    src = wait(server.url, made.json()["id"])
    assert src["status"] == "completed"
    r = httpx.post(f"{server.url}/v1/videos/loops", headers=H, json={"video": {"id": src["id"]}, "seconds": "1"})
    assert r.status_code == 200, r.text  # was 500: the studio's Loop button sends exactly this
    queued = r.json()
    done = wait(server.url, queued["id"])
    assert done["status"] == "completed", done["error"]
    assert done["size"] == queued["size"] == "112x64" and done["seconds"] == queued["seconds"] == "2"
    ext = httpx.post(f"{server.url}/v1/videos/extensions", headers=H, json={"video": {"id": src["id"]}, "seconds": "1"})
    assert ext.status_code == 200, ext.text  # no prompt needed, as on the command line
    assert ext.json()["remixed_from_video_id"] == src["id"] and ext.json()["seconds"] == "2"
    assert wait(server.url, ext.json()["id"])["seconds"] == "2"


def _mp4(frames=8, size=(64, 64)) -> bytes:
    import tempfile
    from pathlib import Path

    from kino.io import write_video

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "v.mp4"
        write_video(p, np.full((frames, size[1], size[0], 3), 120, np.uint8), fps=8)
        return p.read_bytes()


# For each body model, each of its fields: a value to send (form fields; files separately) and what the stored
# GenerationRequest (and the job) must then hold. A new field without an entry here fails the test.
VIDEO = ("video", ("v.mp4", _mp4(), "video/mp4"))
CASES: dict[str, tuple[dict, list, dict]] = {
    "create": ({"prompt": "a red ball", "model": "sora-2", "seed": "11", "seconds": "2", "size": "112x64"},
               [("input_reference", ("a.png", png("red")))],
               {"prompt": "a red ball", "model": "sora-2", "seed": 11, "seconds": 2.0, "size": (112, 64),
                "input_reference": "from_image"}),
    "extend": ({"prompt": "more", "model": "sora-2", "seed": "12", "seconds": "1.5", "size": "112x64",
                "backward": "true"}, [VIDEO],
               {"prompt": "more", "model": "sora-2", "seed": 12, "seconds": 1.5, "size": (112, 64), "backward": True,
                "video": "video"}),
    "edit": ({"prompt": "green", "model": "sora-2", "seed": "13", "strength": "0.3", "size": "112x64"}, [VIDEO],
             {"prompt": "green", "model": "sora-2", "seed": 13, "strength": 0.3, "size": (112, 64), "video": "video"}),
    "loop": ({"prompt": "spin", "model": "sora-2", "seed": "14", "seconds": "0.5", "size": "112x64"}, [VIDEO],
             {"prompt": "spin", "model": "sora-2", "seed": 14, "seconds": 0.5, "size": (112, 64), "video": "video"}),
    "interpolate": ({"prompt": "fade", "model": "sora-2", "seed": "15", "seconds": "2", "size": "112x64",
                     "key_times[]": ["0", "1.5"]},
                    [("keyframes", ("a.png", png("red"))), ("keyframes", ("b.png", png("blue")))],
                    {"prompt": "fade", "model": "sora-2", "seed": 15, "seconds": 2.0, "size": (112, 64),
                     "key_times": (0.0, 1.5), "keyframes": "keyframes"}),
    "connect": ({"prompt": "join", "model": "sora-2", "seed": "16", "seconds": "0.5", "size": "112x64"},
                [("videos", ("a.mp4", _mp4())), ("videos", ("b.mp4", _mp4()))],
                {"prompt": "join", "model": "sora-2", "seed": 16, "seconds": 0.5, "size": (112, 64),
                 "videos": "videos"}),
    "storyboard": ({"model": "sora-2", "seed": "17", "size": "112x64", "subject": "a red circle",
                    "shots[0][prompt]": "rolls", "shots[0][seconds]": "1", "shots[1][prompt]": "falls",
                    "shots[1][seconds]": "0.5", "shots[1][transition]": "cut"}, [],
                   {"model": "sora-2", "seed": 17, "size": (112, 64), "subject": "a red circle",
                    "shots": (("rolls", 1.0, "continuous"), ("falls", 0.5, "cut"))}),
    "remix": ({"prompt": "a blue ball"}, [], {"prompt": "a blue ball"}),
}
ROUTES = {"create": "", "extend": "/extensions", "edit": "/edits", "loop": "/loops", "interpolate": "/interpolations",
          "connect": "/connections", "storyboard": "/storyboards"}


def test_every_field_of_every_body_reaches_the_generation_request(policy, tmp_path, tmp_path_factory):
    from kino.generation import GenerationRequest

    assert set(CASES) == set(S.BODIES)
    config = ServeConfig(data_dir=tmp_path / "data", api_keys=(KEY,), queue_size=32, max_active_per_key=32)
    app = create_app(config, [shared_pipe(shared_model_dir(tmp_path_factory))], "tiny")
    for w in app.state.service.workers:
        w.start = lambda: None  # requests only: the jobs stay queued
    store = app.state.service.store
    with ThreadServer(app, free_port()) as s:
        stored = {}
        for name, (data, files, expect) in CASES.items():
            assert set(expect) == set(S.BODIES[name].model_fields), f"{name}: a field without a check"
            if name == "remix":
                src = store.claim()  # the text job made above, finished by hand: a remix needs a completed video
                store.complete(src.id, "2", "112x64", int(time.time()) + 60)
                r = httpx.post(f"{s.url}/v1/videos/{src.id}/remix", headers=H, json=data)
            else:
                r = httpx.post(f"{s.url}/v1/videos{ROUTES[name]}", headers=H, data=data, files=files or None)
            assert r.status_code == 200, f"{name}: {r.text}"
            job = store.get(r.json()["id"])
            req = GenerationRequest(**job.params["request"])  # what the worker builds
            stored[name] = job
            for field, want in expect.items():
                if field == "model":
                    assert job.model == want, name
                elif field == "size":
                    assert (req.width, req.height) == want, name
                elif field in ("video", "input_reference", "keyframes", "videos"):
                    got = getattr(req, want)
                    paths = got if isinstance(got, tuple) else (got,)
                    assert paths and all(app.state.service.storage.uploads in __import__("pathlib").Path(p).parents
                                         for p in paths), (name, field, got)
                    assert len(paths) == (2 if field in ("keyframes", "videos") else 1), (name, field)
                elif field == "shots":
                    assert tuple((x.prompt, x.seconds, x.transition) for x in req.shots) == want, name
                else:
                    assert getattr(req, field) == want, (name, field, getattr(req, field))
        remix = GenerationRequest(**stored["remix"].params["request"])
        first = GenerationRequest(**stored["create"].params["request"])
        assert remix.mode == first.mode == "image-to-video" and remix.seed == first.seed == 11
        assert remix.from_image != first.from_image  # its own copy of the image
