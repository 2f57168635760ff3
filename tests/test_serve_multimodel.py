"""Several models served at once (`kino serve --model kino=DIR --model wan=DIR`): the tiny kino pipeline and a
tiny Wan, on loopback through the official `openai` client; each model's workers claim only its own jobs."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest
from tiny_families import tiny_models  # noqa: F401  (the session fixture)

from kino.serve.app import create_app
from kino.serve.config import RestartPolicy, ServeConfig
from kino.serve.jobs import JobStore
from kino.serve.testing import (
    ThreadServer,
    free_port,
    isolated_env,
    shared_model_dir,
    shared_pipe,
    studio_page,
    wait_video,
)

KEY = "sk-kino-multimodel-key"
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def server(tiny_models, tmp_path_factory):  # noqa: F811
    with isolated_env(tmp_path_factory.mktemp("cfg")):
        kino_dir = shared_model_dir(tmp_path_factory)
        # the second model is loaded from config.more_models, as `kino serve --model tiny=DIR --model wan=DIR` does
        config = ServeConfig(model_dir=kino_dir, more_models=(Path(f"wan={tiny_models['wan']}"),),
                             data_dir=tmp_path_factory.mktemp("serve"), api_keys=(KEY,), sizes=("32x32",), steps=2,
                             max_seconds=4.0, enhance=False)
        app = create_app(config, [shared_pipe(kino_dir)], "tiny")
        with ThreadServer(app, free_port()) as s:
            yield s


def test_two_models_at_once(server, tmp_path):
    from openai import BadRequestError, OpenAI

    from kino.safety.provenance import read_manifest

    c = OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0, timeout=60)
    h = {"Authorization": f"Bearer {KEY}"}
    wan = c.videos.create(prompt="a dog runs on the beach", seconds="1", size="32x32", model="wan")
    own = c.videos.create(prompt="a red circle moves left", seconds="1", size="32x32")  # no model: the first
    for v, family, name in ((wan, "wan", "wan"), (own, "kino", "tiny")):
        done = wait_video(c, v.id)
        assert done.status == "completed", done.error
        out = tmp_path / f"{name}.mp4"
        c.videos.download_content(v.id).write_to_file(out)
        gen = read_manifest(out).assertion("org.kino.generation")
        # a family model's settings name it; kino's own pipeline records no family
        assert gen["settings"].get("family", "kino") == family and gen["model"] == name, gen

    # extend: the kino model can, the Wan T2V model cannot (a 400 naming `model`, nothing queued)
    before = c.videos.list().data
    r = httpx.post(f"{server.url}/v1/videos/extensions", headers=h,
                   json={"prompt": "it goes on", "seconds": "1", "video": {"id": own.id}, "model": "wan"})
    assert r.status_code == 400, r.text
    e = r.json()["error"]
    assert e["param"] == "model" and "cannot do extend" in e["message"], e
    assert len(c.videos.list().data) == len(before)
    r = httpx.post(f"{server.url}/v1/videos/extensions", headers=h,
                   json={"prompt": "it goes on", "seconds": "1", "video": {"id": own.id}, "model": "tiny"})
    assert r.status_code == 200, r.text
    assert wait_video(c, r.json()["id"]).status == "completed"

    # an edit of the kino video on Wan: Wan's frame limit and fps, run by Wan's worker
    r = httpx.post(f"{server.url}/v1/videos/edits", headers=h,
                   json={"prompt": "a dog runs on the beach", "video": {"id": own.id}, "model": "wan"})
    assert r.status_code == 200, r.text
    done = wait_video(c, r.json()["id"])
    assert done.status == "completed", done.error
    c.videos.download_content(done.id).write_to_file(tmp_path / "edit.mp4")
    assert read_manifest(tmp_path / "edit.mp4").assertion("org.kino.generation")["settings"]["family"] == "wan"

    with pytest.raises(BadRequestError) as err:
        c.videos.create(prompt="a red circle", model="not-served")
    assert "valid models are tiny, wan" in str(err.value)

    listed = {m.id: m.model_extra for m in c.models.list()}
    assert listed["wan"]["family"] == "wan" and listed["wan"]["modes"] == ["edit", "text"]
    assert listed["tiny"]["family"] == "kino" and "extend" in listed["tiny"]["modes"]
    assert listed["sora-2"]["family"] == "kino"  # OpenAI's names are the default model's
    opts = httpx.get(f"{server.url}/v1/kino/options", headers=h).json()
    assert opts["model"] == "tiny" and list(opts["served"]) == ["tiny", "wan"]
    assert opts["served"]["wan"]["modes"] == ["edit", "text"]


def test_studio_model_picker(server, tmp_path):
    """In Chromium: the picker lists both models; choosing Wan hides the storyboard tab and the image input,
    and a video made from the studio then runs on Wan."""
    with studio_page(server.url, KEY, tmp_path / "profile") as page:
        assert page.locator("#model-pick").is_visible()
        assert page.locator("#model-pick option").all_inner_texts() == ["tiny (kino)", "wan (wan)"]
        assert page.locator("#tab-board").is_visible() and page.locator("#image").is_visible()
        page.select_option("#model-pick", "wan")
        assert not page.locator("#tab-board").is_visible() and not page.locator("#image").is_visible()
        page.fill("#prompt", "a dog runs on the beach")
        page.click("#prompt-form button[type=submit]")
        page.wait_for_selector("#status:has-text('queued')")
    jobs = httpx.get(f"{server.url}/v1/videos", headers={"Authorization": f"Bearer {KEY}"}).json()["data"]
    assert jobs[0]["model"] == "wan", jobs[0]


def test_each_job_keeps_its_model_over_a_restart_and_old_databases_migrate(tmp_path):
    path = tmp_path / "jobs.sqlite3"
    old = sqlite3.connect(path)  # a data directory written before `served` existed
    old.execute("CREATE TABLE jobs (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, owner TEXT NOT"
                " NULL, status TEXT NOT NULL, progress INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL,"
                " started_at INTEGER, completed_at INTEGER, expires_at INTEGER, model TEXT NOT NULL, prompt TEXT,"
                " seconds TEXT NOT NULL, size TEXT NOT NULL, kind TEXT NOT NULL, params TEXT NOT NULL,"
                " remixed_from_video_id TEXT, error_code TEXT, error_message TEXT, attempts INTEGER NOT NULL"
                " DEFAULT 0, expired INTEGER NOT NULL DEFAULT 0)")
    old.execute("INSERT INTO jobs (id, owner, status, created_at, model, seconds, size, kind, params) VALUES"
                " ('video_old', 'k', 'queued', 0, 'sora-2', '1', '32x32', 'text', '{}')")
    old.commit()
    old.close()
    store = JobStore(path, default_model="tiny")
    common = dict(owner="k", prompt="p", seconds="1", size="32x32", kind="text", params={}, queue_size=9,
                  max_active=9)
    w = store.create(model="wan", **common)
    t = store.create(model="sora-2", served="tiny", **common)
    assert store.claim("wan").id == w.id and store.claim("wan") is None  # wan's worker takes only wan's job
    assert store.claim("tiny").id == "video_old"  # the old row runs on the default model
    assert store.claim("tiny").id == t.id
    store.close()
    store = JobStore(path, default_model="other")  # the server died: all three were in progress
    assert store.recover(RestartPolicy.RETRY, 3) == (3, 0)
    assert {store.claim("wan").id, store.claim("tiny").id, store.claim("tiny").id} == {w.id, t.id, "video_old"}
    assert store.get(t.id).served == "tiny" and store.get(t.id).model == "sora-2"
    store.close()
