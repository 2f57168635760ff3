"""kino serve through real clients: the official `openai` package and plain HTTP against a uvicorn server
on 127.0.0.1 (a thread of this process, over the tiny model)."""

from __future__ import annotations

import io

import httpx
import pytest

from kino.serve.app import create_app
from kino.serve.config import ServeConfig
from kino.serve.testing import (
    ThreadServer,
    free_port,
    isolated_env,
    shared_model_dir,
    shared_pipe,
    wait_video,
)

KEY, OTHER = "sk-kino-test-key-1", "sk-kino-test-key-2"
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the client marks the Sora API deprecated


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with isolated_env(tmp_path_factory.mktemp("cfg")):
        yield


@pytest.fixture(scope="module")
def server(env, tmp_path_factory):
    model = shared_model_dir(tmp_path_factory)
    config = ServeConfig(model_dir=model, data_dir=tmp_path_factory.mktemp("serve"), api_keys=(KEY, OTHER),
                         max_upload_bytes=200_000, max_request_bytes=400_000, max_prompt_chars=300)
    with ThreadServer(create_app(config, [shared_pipe(model)], "tiny"), free_port()) as s:
        yield s


def client(server, key=KEY):
    from openai import OpenAI

    return OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0, timeout=30)


def wait(c, vid: str, timeout: float = 60.0):
    seen: list = []
    v = wait_video(c, vid, timeout, progress=seen)
    assert seen == sorted(seen), f"progress went backwards: {seen}"
    return v


def test_openai_client_create_poll_download_remix_delete(server, tmp_path):
    from openai import NotFoundError

    from kino.io import probe

    c = client(server)
    v = c.videos.create(prompt="a red ball bouncing", seconds="4", size="1280x720", model="sora-2")
    assert v.object == "video" and v.status == "queued" and v.model == "sora-2" and v.size == "112x64"
    done = wait(c, v.id)
    assert done.status == "completed", done.error
    assert done.progress == 100 and done.seconds == "4" and done.completed_at >= done.created_at
    assert done.expires_at > done.completed_at

    out = tmp_path / "a.mp4"
    c.videos.download_content(v.id).write_to_file(out)
    info = probe(out)
    assert (info.width, info.height, info.num_frames, info.codec) == (112, 64, 32, "h264")
    from PIL import Image

    thumb = Image.open(io.BytesIO(c.videos.download_content(v.id, variant="thumbnail").content))
    sheet = Image.open(io.BytesIO(c.videos.download_content(v.id, variant="spritesheet").content))
    assert thumb.size == (112, 64) and sheet.size == (112 * 10, 64)

    r = c.videos.remix(v.id, prompt="a blue ball bouncing")
    assert r.remixed_from_video_id == v.id and r.size == "112x64"
    # this client version only sends uploads for `video` (a {"id"} reference fails in its own code): upload it
    ext = c.videos.extend(prompt="it keeps bouncing", seconds="4", video=("a.mp4", out.read_bytes(), "video/mp4"))
    assert ext.seconds == "8" and ext.mode == "extend"  # the stitched total
    # ... and a reference by id, as the API documents it, over plain HTTP
    ed = httpx.post(f"{server.url}/v1/videos/edits", headers={"Authorization": f"Bearer {KEY}"},
                    json={"prompt": "a green ball bouncing", "video": {"id": v.id}})
    assert ed.status_code == 200, ed.text
    ed = c.videos.retrieve(ed.json()["id"])
    for job in (r, ext, ed):
        assert wait(c, job.id).status == "completed"
    assert probe(_download(c, ext.id, tmp_path)).num_frames == 64
    assert probe(_download(c, ed.id, tmp_path)).num_frames == 32

    page = c.videos.list(limit=2, order="asc")
    assert [x.id for x in page.data] == [v.id, r.id] and page.has_more
    assert {x.id for x in c.videos.list(limit=100).data} >= {v.id, r.id, ext.id, ed.id}

    gone = c.videos.delete(r.id)
    assert gone.deleted and gone.object == "video.deleted" and gone.id == r.id
    with pytest.raises(NotFoundError):
        c.videos.retrieve(r.id)


def _download(c, vid, folder):
    p = folder / f"{vid}.mp4"
    c.videos.download_content(vid).write_to_file(p)
    return p


def test_image_to_video_upload_and_provenance(server):
    from PIL import Image

    c = client(server)
    buf = io.BytesIO()
    Image.new("RGB", (80, 50), (200, 30, 30)).save(buf, format="PNG")
    v = c.videos.create(prompt="a red square moves right", seconds="1", size="64x64",
                        input_reference=("anything.bin", buf.getvalue(), "application/octet-stream"))
    done = wait(c, v.id)
    assert done.status == "completed" and done.mode == "image-to-video"
    prov = httpx.get(f"{server.url}/v1/videos/{v.id}/provenance", headers={"Authorization": f"Bearer {KEY}"}).json()
    assert prov["outcome"] == "ok" and prov["made_by_kino"] and prov["watermark_present"]
    # a remix keeps the mode and the image (its own copy: the source's deletion does not take it away)
    r = c.videos.remix(v.id, prompt="a red square moves left")
    c.videos.delete(v.id)
    r = wait(c, r.id)
    assert r.status == "completed" and r.mode == "image-to-video" and r.remixed_from_video_id == v.id, r.error
    assert (r.size, r.seconds) == ("64x64", "1")


def test_kino_modes_storyboard_loop_connect_interpolate(server):
    h = {"Authorization": f"Bearer {KEY}"}
    url = f"{server.url}/v1/videos"
    board = httpx.post(f"{url}/storyboards", headers=h, json={
        "subject": "a red circle", "size": "64x64", "seed": 3,
        "shots": [{"prompt": "it rolls left", "seconds": 1}, {"prompt": "it falls", "seconds": 1, "transition": "cut"}]})
    assert board.status_code == 200, board.text
    loop = httpx.post(f"{url}/loops", headers=h, data={"prompt": "a spinning square", "seconds": "1"})
    assert loop.status_code == 200, loop.text
    c = client(server)
    b, lp = wait(c, board.json()["id"]), wait(c, loop.json()["id"])
    assert b.status == lp.status == "completed" and b.seconds == "2"
    conn = httpx.post(f"{url}/connections", headers=h, json={
        "prompt": "a transition", "seconds": "1", "videos": [{"id": b.id}, {"id": lp.id}]})
    assert conn.status_code == 200, conn.text
    from PIL import Image

    def png(color):
        buf = io.BytesIO()
        Image.new("RGB", (64, 64), color).save(buf, format="PNG")
        return buf.getvalue()

    interp = httpx.post(f"{url}/interpolations", headers=h, data={"prompt": "red turns blue", "seconds": "2"},
                        files=[("keyframes", ("a.png", png("red"))), ("keyframes", ("b.png", png("blue")))])
    assert interp.status_code == 200, interp.text
    for job in (conn, interp):
        done = wait(c, job.json()["id"])
        assert done.status == "completed", done.error


def err(r: httpx.Response) -> dict:
    e = r.json()["error"]
    assert set(e) >= {"message", "type", "param", "code"}
    return e


def test_errors_in_openai_shape(server):
    from openai import AuthenticationError, BadRequestError

    with pytest.raises(AuthenticationError):
        client(server, key="sk-wrong-key-000").videos.list()
    r = httpx.get(f"{server.url}/v1/videos")
    assert r.status_code == 401 and err(r)["code"] == "invalid_api_key"

    c = client(server)
    with pytest.raises(BadRequestError) as e:
        c.videos.create(prompt="a ball", size="70x64")
    assert "valid sizes are 64x64" in str(e.value) and "1280x720" in str(e.value)
    with pytest.raises(BadRequestError, match=r"give a number of seconds in \[0.1, 20\]"):
        c.videos.create(prompt="a ball", seconds="99")
    with pytest.raises(BadRequestError) as e:
        c.videos.create(prompt="a nude woman on a beach")
    body = e.value.body
    assert body["code"] == "moderation_blocked" and body["category"] == "sexual" and body["param"] == "prompt"
    with pytest.raises(BadRequestError, match="at most 300"):
        c.videos.create(prompt="x" * 301)
    with pytest.raises(BadRequestError, match="did not decode"):
        c.videos.create(prompt="a ball", input_reference=("photo.png", b"not really a png", "image/png"))
    with pytest.raises(BadRequestError, match="valid models are"):
        c.videos.create(prompt="a ball", model="dall-e-9")

    h = {"Authorization": f"Bearer {KEY}"}
    big = httpx.post(f"{server.url}/v1/videos", headers=h, files={"input_reference": ("a.png", b"0" * 300_000)},
                     data={"prompt": "a ball"})
    assert big.status_code == 413 and err(big)["code"] == "upload_too_large"
    huge = httpx.post(f"{server.url}/v1/videos", headers=h, content=b"{" + b" " * 500_000 + b"}",
                      params={}, timeout=30)
    assert huge.status_code == 413 and err(huge)["code"] == "request_too_large"
    bad_id = httpx.get(f"{server.url}/v1/videos/..%2F..%2Fjobs.sqlite3/content", headers=h)
    assert bad_id.status_code == 404
    r = httpx.get(f"{server.url}/v1/videos", headers=h, params={"limit": 0})
    assert r.status_code == 400 and err(r)["param"] == "limit"


def test_keys_see_only_their_own_videos(server):
    from openai import NotFoundError

    v = client(server).videos.create(prompt="a yellow star", seconds="1", size="64x64")
    with pytest.raises(NotFoundError):
        client(server, key=OTHER).videos.retrieve(v.id)
    assert v.id not in {x.id for x in client(server, key=OTHER).videos.list().data}
    wait(client(server), v.id)


def test_full_queue_answers_429_with_retry_after(env, tmp_path, tmp_path_factory):
    config = ServeConfig(data_dir=tmp_path, no_auth=True, queue_size=2, max_active_per_key=3)
    app = create_app(config, [shared_pipe(shared_model_dir(tmp_path_factory))], "tiny")
    for w in app.state.service.workers:
        w.start = lambda: None  # no worker: the queue only fills
    with ThreadServer(app, free_port()) as s:
        codes = [httpx.post(f"{s.url}/v1/videos", json={"prompt": "a ball", "seconds": "1"}) for _ in range(3)]
        assert [r.status_code for r in codes] == [200, 200, 429]
        assert int(codes[2].headers["Retry-After"]) >= 1 and err(codes[2])["type"] == "rate_limit_error"
        assert httpx.get(f"{s.url}/v1/videos").json()["data"][0]["status"] == "queued"



def test_expired_assets_are_deleted(server):
    c = client(server)
    v = wait(c, c.videos.create(prompt="a green ball", seconds="1", size="64x64").id)
    svc = server.app.state.service
    path = svc.storage.asset(v.id)
    assert path.is_file() and v.expires_at is not None
    svc.clean(now=v.expires_at - 1)  # earlier videos expire, this one not yet
    assert path.is_file()
    assert svc.clean(now=v.expires_at) >= 1  # this test runs last in the module: it expires every video
    assert not path.exists() and not svc.storage.asset(v.id, "thumbnail").exists()
    # the inputs finished videos kept for their remixes (the image-to-video test's) went with them
    assert not [f.name for f in svc.storage.uploads.iterdir() if not f.name.startswith(".")]
    r = httpx.get(f"{server.url}/v1/videos/{v.id}/content", headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 400 and "expired" in err(r)["message"]


def test_an_uploaded_video_keeps_its_size_as_on_the_command_line(server, tmp_path):
    """16 #4: an extension of an upload is not centre-cropped to the default size (by id it never was)."""
    import numpy as np

    from kino.io import write_video

    write_video(tmp_path / "wide.mp4", np.zeros((5, 64, 112, 3), np.uint8), fps=8)
    r = httpx.post(f"{server.url}/v1/videos/extensions", headers={"Authorization": f"Bearer {KEY}"},
                   data={"seconds": "1"}, files={"video": (tmp_path / "wide.mp4").read_bytes()})
    assert r.status_code == 200, r.text
    done = wait(client(server), r.json()["id"])
    assert done.status == "completed" and done.size == "112x64", (done.size, done.error)
