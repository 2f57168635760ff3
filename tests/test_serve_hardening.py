"""kino serve under attack and faults (issue 15), in-process servers on 127.0.0.1 over the tiny model: inputs
bounded from their headers, cheap checks before expensive ones, uploads of rejected requests deleted,
quotas, the no-auth guard, key guessing, strict fields, expiry, a worker that survives the store, one
server per data directory."""

from __future__ import annotations

import sqlite3
import stat
import threading
import time

import httpx
import pytest

from kino.errors import InputError
from kino.serve.app import create_app
from kino.serve.config import ServeConfig
from kino.serve.testing import (
    ThreadServer,
    free_port,
    png_declaring,
    shared_model_dir,
    shared_pipe,
    write_plain_mp4,
)

KEY = "sk-kino-hardening-key"
H = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module", autouse=True)
def env(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("KINO_CONFIG_DIR", str(tmp_path_factory.mktemp("cfg")))
    yield
    mp.undo()


def serve(tmp_path_factory, folder, run_workers=True, **kw):
    config = ServeConfig(data_dir=folder, **({"api_keys": (KEY,)} if not kw.get("no_auth") else {}), **kw)
    app = create_app(config, [shared_pipe(shared_model_dir(tmp_path_factory))], "tiny")
    if not run_workers:
        for w in app.state.service.workers:
            w.start = lambda: None  # requests only: jobs stay queued
    return ThreadServer(app, free_port())


def err(r: httpx.Response) -> dict:
    e = r.json()["error"]
    assert set(e) >= {"message", "type", "param", "code"}, e
    return e


def uploads(server) -> list[str]:
    return [f.name for f in server.app.state.service.storage.uploads.iterdir()]


def wait(url: str, vid: str, headers=H, timeout: float = 90.0) -> dict:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        v = httpx.get(f"{url}/v1/videos/{vid}", headers=headers).json()
        if v["status"] in ("completed", "failed"):
            return v
        time.sleep(0.1)
    raise TimeoutError(vid)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with serve(tmp_path_factory, tmp_path_factory.mktemp("hard") / "data", max_seconds=4.0, max_image_pixels=256 * 256,
               max_video_pixels=320 * 240) as s:
        yield s


def test_media_is_bounded_from_its_header_and_rejected_uploads_leave_nothing(server, tmp_path):
    url = f"{server.url}/v1/videos"
    many = write_plain_mp4(tmp_path / "many.mp4", 200, 64, 48)  # 25 s at 8 fps: more than --max-seconds
    big = write_plain_mp4(tmp_path / "big.mp4", 2, 640, 480)  # more pixels a frame than allowed
    r = httpx.post(f"{url}/extensions", headers=H, data={"seconds": "1"}, files={"video": many.read_bytes()})
    assert r.status_code == 400 and "more than 32 frames" in err(r)["message"], r.text  # 4 s x 8 fps
    r = httpx.post(f"{url}/extensions", headers=H, data={"seconds": "1"}, files={"video": big.read_bytes()})
    assert r.status_code == 400 and "640x480" in err(r)["message"], r.text
    r = httpx.post(url, headers=H, data={"prompt": "a ball"}, files={"input_reference": png_declaring(300, 300)})
    assert r.status_code == 400 and "300x300" in err(r)["message"], r.text
    # extensions and loops are bound by --max-seconds in all (a 3 s video extended by 2 s would be 5 s)
    three = write_plain_mp4(tmp_path / "three.mp4", 24, 64, 64)
    r = httpx.post(f"{url}/extensions", headers=H, data={"seconds": "2"}, files={"video": three.read_bytes()})
    assert r.status_code == 400 and "at most 4 s in all" in err(r)["message"], r.text
    r = httpx.post(f"{url}/loops", headers=H, data={"seconds": "2"}, files={"video": three.read_bytes()})
    assert r.status_code == 400 and "at most 4 s in all" in err(r)["message"], r.text
    # a valid upload rejected later (unknown model, refused prompt) is deleted at once too
    r = httpx.post(f"{url}/extensions", headers=H, data={"seconds": "1", "prompt": "a nude woman on a beach"},
                   files={"video": three.read_bytes()})
    assert r.status_code == 400 and err(r)["code"] == "moderation_blocked"
    r = httpx.post(f"{url}/edits", headers=H, data={"prompt": "x", "model": "dall-e-9"},
                   files={"video": three.read_bytes()})
    assert r.status_code == 400 and err(r)["param"] == "model"
    assert uploads(server) == []


def test_fields_are_strict_and_checked_at_request_time(server):
    url = f"{server.url}/v1/videos"
    for seconds in ("1_0", "\u0664", "1e-300", "0.01", "-1", "inf", "nan", " ", "2.5.1"):
        r = httpx.post(url, headers=H, json={"prompt": "a red ball", "seconds": seconds})
        assert r.status_code == 400 and err(r)["param"] == "seconds", (seconds, r.text)
    r = httpx.post(url, headers=H, json={"prompt": "a red ball", "seconds": 1e-300})
    assert r.status_code == 400 and err(r)["param"] == "seconds"
    for prompt in ("\u200b\u200b", "\u00ad \ufeff", "   "):
        r = httpx.post(url, headers=H, json={"prompt": prompt})
        assert r.status_code == 400 and err(r)["param"] == "prompt", (prompt, r.text)
    # a lone surrogate: a clean 400, not a 500
    r = httpx.post(url, headers={**H, "Content-Type": "application/json"}, content=b'{"prompt": "a ball \\ud800"}')
    assert r.status_code == 400 and err(r)["param"] == "prompt", r.text
    # key_times that do not match the keyframes: refused now, not a failed job later
    from kino.serve.testing import png_declaring as png  # noqa: F811

    r = httpx.post(f"{url}/interpolations", headers=H, data={"key_times[]": ["0", "1", "2"]},
                   files=[("keyframes", png(64, 64)), ("keyframes", png(64, 64))])
    assert r.status_code == 400 and err(r)["param"] == "key_times", r.text
    assert uploads(server) == []
    # a storyboard as a multipart form (the official client's encoding)
    r = httpx.post(f"{url}/storyboards", headers=H, files={"size": (None, "64x64")},
                   data={"shots[0][prompt]": "a red ball rolls", "shots[0][seconds]": "1",
                         "shots[1][prompt]": "a blue square falls", "shots[1][seconds]": "1"})
    assert r.status_code == 200 and r.json()["seconds"] == "2", r.text
    # a refused term split over shots is judged in the joined text too
    r = httpx.post(f"{url}/storyboards", headers=H, json={"shots": [{"prompt": "mickey", "seconds": 1},
                                                                     {"prompt": "mouse dancing", "seconds": 1}]})
    assert r.status_code == 400 and err(r)["code"] == "moderation_blocked", r.text


def test_expired_video_is_not_downloadable_before_the_cleanup_and_its_prompt_is_purged(server):
    svc = server.app.state.service
    v = httpx.post(f"{server.url}/v1/videos", headers=H, json={"prompt": "a green ball", "seconds": "1"}).json()
    v = wait(server.url, v["id"])
    assert httpx.get(f"{server.url}/v1/videos/{v['id']}/content", headers=H).status_code == 200
    db = sqlite3.connect(svc.store.path)
    db.execute("UPDATE jobs SET expires_at = ? WHERE id = ?", (int(time.time()) - 1, v["id"]))
    db.commit()
    r = httpx.get(f"{server.url}/v1/videos/{v['id']}/content", headers=H)  # no cleanup pass has run
    assert r.status_code == 400 and "expired" in err(r)["message"]
    svc.clean()
    prompt, params = db.execute("SELECT prompt, params FROM jobs WHERE id = ?", (v["id"],)).fetchone()
    assert prompt is None and "green" not in params and not svc.storage.asset(v["id"]).exists()


def test_rate_limits_come_before_the_policy_and_decoding_and_quotas_hold(tmp_path, tmp_path_factory):
    with serve(tmp_path_factory, tmp_path / "a", run_workers=False, queue_size=1) as s:
        url = f"{s.url}/v1/videos"
        assert httpx.post(url, headers=H, json={"prompt": "a ball"}).status_code == 200
        refused = httpx.post(url, headers=H, json={"prompt": "a nude woman on a beach"})
        assert refused.status_code == 429 and err(refused)["code"] == "rate_limit_exceeded"  # before the policy
        bomb = httpx.post(url, headers=H, data={"prompt": "a ball"}, files={"input_reference": b"not an image"})
        assert bomb.status_code == 429 and uploads(s) == []  # before the upload is looked at
        big = httpx.post(url, headers={**H, "Content-Type": "application/json"},
                         content=b'{"prompt": "' + b"x" * (9 * 2**20) + b'"}')
        assert big.status_code == 413
    with serve(tmp_path_factory, tmp_path / "b", quota_bytes_per_key=1) as s:
        url = f"{s.url}/v1/videos"
        wait(s.url, httpx.post(url, headers=H, json={"prompt": "a ball", "seconds": "1"}).json()["id"])
        r = httpx.post(url, headers=H, json={"prompt": "a ball", "seconds": "1"})
        assert r.status_code == 429 and err(r)["code"] == "insufficient_quota", r.text


def test_data_directory_is_private_and_has_one_server(tmp_path, tmp_path_factory):
    data = tmp_path / "data"
    with serve(tmp_path_factory, data) as s:
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        with pytest.raises(InputError, match="in use by another kino serve"):
            serve(tmp_path_factory, data)
        assert httpx.get(f"{s.url}/health").json()["status"] == "ok"
    serve(tmp_path_factory, data).app.state.service.lock.release()  # free again once the first one stopped


def test_no_auth_answers_only_loopback_pages_and_refuses_cross_site_forms(tmp_path, tmp_path_factory):
    with serve(tmp_path_factory, tmp_path / "d", run_workers=False, no_auth=True) as s:
        url = f"{s.url}/v1/videos"
        rebinding = httpx.get(url, headers={"Host": "evil.example:8000"})
        assert rebinding.status_code == 403 and "host" in err(rebinding)["message"]
        other_page = httpx.get(url, headers={"Origin": "http://evil.example"})
        assert other_page.status_code == 403
        form = httpx.post(url, data={"prompt": "a ball"})  # what a plain <form> on any page can send
        assert form.status_code == 403 and "X-Kino-CSRF" in err(form)["message"]
        assert httpx.post(url, files={"prompt": (None, "a ball")}).status_code == 403
        assert httpx.post(url, json={"prompt": "a ball"}).status_code == 200
        assert httpx.post(url, data={"prompt": "a ball"}, headers={"X-Kino-CSRF": "1"}).status_code == 200
        assert httpx.get(url, headers={"Origin": s.url, "Host": "localhost"}).status_code == 200
        docs = httpx.get(f"{s.url}/docs")
        assert docs.status_code == 200 and "default-src 'self'" in docs.headers["content-security-policy"]
        assert "//" not in docs.text.replace("/openapi.json", "")  # no CDN: every asset from this server
        assert httpx.get(f"{s.url}/favicon.ico").status_code == 200


def test_key_guessing_is_slowed(server):
    codes = [httpx.get(f"{server.url}/v1/videos", headers={"Authorization": f"Bearer sk-guess-{i:08d}"}).status_code
             for i in range(14)]
    assert codes[:10] == [401] * 10 and set(codes[10:]) == {429}
    # the right key still works from elsewhere; from this address only once its minute has passed
    server.app.state.service.key_guard.failures.clear()
    assert httpx.get(f"{server.url}/v1/videos", headers=H).status_code == 200


def test_worker_survives_a_locked_store_and_health_reports_a_dead_worker(tmp_path, tmp_path_factory):
    with serve(tmp_path_factory, tmp_path / "w", db_timeout=0.2, steps=60) as s:
        svc = s.app.state.service
        url = f"{s.url}/v1/videos"
        slow = httpx.post(url, headers=H, json={"prompt": "a red ball", "seconds": "2", "size": "128x128"}).json()
        t0 = time.monotonic()
        while httpx.get(f"{url}/{slow['id']}", headers=H).json()["progress"] < 5:
            assert time.monotonic() - t0 < 60
            time.sleep(0.02)
        held = threading.Event()

        def hold():  # another process's lock on the database, longer than the store waits
            db = sqlite3.connect(svc.store.path, timeout=5, isolation_level=None)
            db.execute("BEGIN EXCLUSIVE")
            held.set()
            time.sleep(2.0)
            db.execute("COMMIT")
            db.close()

        t = threading.Thread(target=hold)
        t.start()
        held.wait()
        r = httpx.post(url, headers=H, json={"prompt": "a blue ball", "seconds": "1"})  # the API says so cleanly
        assert r.status_code == 503 and err(r)["code"] == "service_unavailable", r.text
        t.join()
        nxt = httpx.post(url, headers=H, json={"prompt": "a blue ball", "seconds": "1"}).json()
        assert wait(s.url, slow["id"])["status"] == "completed"
        assert wait(s.url, nxt["id"])["status"] == "completed"  # the worker lived on
        assert httpx.get(f"{s.url}/health").json()["status"] == "ok"
        w = svc.workers[0]
        w.stop()
        w.join(timeout=30)
        h = httpx.get(f"{s.url}/health")
        assert h.status_code == 503 and h.json()["status"] == "degraded" and not h.json()["worker_states"][0]["alive"]


def test_full_disk_gives_a_clean_507_and_leaves_nothing(tmp_path, tmp_path_factory):
    import os
    import subprocess

    import numpy as np
    from PIL import Image

    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a small tmpfs needs root")
    try:
        with serve(tmp_path_factory, disk / "data", run_workers=False) as s:
            filler = disk / "filler"
            with open(filler, "wb") as f:  # fill the disk, leaving ~40 KB
                free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
                f.write(b"\0" * max(0, free - 40_000))
            import io

            buf = io.BytesIO()
            noise = np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)
            Image.fromarray(noise).save(buf, format="PNG")  # ~120 KB as stored: more than is free
            r = httpx.post(f"{s.url}/v1/videos", headers=H, data={"prompt": "a ball"},
                           files={"input_reference": buf.getvalue()})
            assert r.status_code == 507 and err(r)["code"] == "insufficient_storage", r.text
            assert uploads(s) == []  # no half-written upload
            filler.unlink()
            assert httpx.post(f"{s.url}/v1/videos", headers=H, json={"prompt": "a ball"}).status_code == 200
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)
