"""`kino serve` over a tiny Wan folder, through the official `openai` client and plain HTTP on loopback."""

from __future__ import annotations

import time

import httpx
import pytest
from tiny_families import tiny_models  # noqa: F401  (the session fixture)

from kino.families import load_model
from kino.serve.app import create_app
from kino.serve.config import ServeConfig
from kino.serve.testing import ThreadServer, free_port

KEY = "sk-kino-families-key"
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def server(tiny_models, tmp_path_factory):  # noqa: F811
    mp = pytest.MonkeyPatch()
    mp.setenv("KINO_CONFIG_DIR", str(tmp_path_factory.mktemp("cfg")))
    for name in ("KINO_C2PA_CERT", "KINO_C2PA_KEY", "KINO_SAFETY_POLICY", "KINO_ENHANCE_BACKEND",
                 "KINO_MODEL_OPTIONS"):
        mp.delenv(name, raising=False)
    folder = tiny_models["wan"]
    config = ServeConfig(model_dir=folder, data_dir=tmp_path_factory.mktemp("serve"), api_keys=(KEY,),
                         sizes=("16x16",), steps=2, max_seconds=4.0)
    with ThreadServer(create_app(config, [load_model(folder)], "wan"), free_port()) as s:
        yield s
    mp.undo()


def wait(c, vid: str, timeout: float = 90.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        v = c.videos.retrieve(vid)
        if v.status in ("completed", "failed"):
            return v
        time.sleep(0.2)
    raise TimeoutError(vid)


def test_openai_client_with_a_wan_model(server, tmp_path):
    from openai import BadRequestError, OpenAI

    from kino.io import probe
    from kino.safety.provenance import read_manifest

    c = OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0, timeout=60)
    v = c.videos.create(prompt="a dog runs on the beach at sunset", seconds="1", size="16x16", model="wan")
    done = wait(c, v.id)
    assert done.status == "completed", done.error
    out = tmp_path / "wan.mp4"
    c.videos.download_content(v.id).write_to_file(out)
    assert (probe(out).width, probe(out).height) == (16, 16)
    gen = read_manifest(out).assertion("org.kino.generation")
    assert gen["settings"]["family"] == "wan" and gen["model"] == "wan"

    # a mode the model cannot do: a 400 in OpenAI's error shape, before anything is queued
    r = httpx.post(f"{server.url}/v1/videos/extensions", headers={"Authorization": f"Bearer {KEY}"},
                   json={"prompt": "it goes on", "seconds": "1", "video": {"id": v.id}})
    assert r.status_code == 400, r.text
    e = r.json()["error"]
    assert e["param"] == "model" and "cannot do extend" in e["message"] and "it can do: edit, text" in e["message"]
    with pytest.raises(BadRequestError):
        c.videos.create(prompt="a red circle", model="not-served")

    listed = {m.id: m for m in c.models.list()}
    assert "wan" in listed and "sora-2" in listed
    assert listed["wan"].model_extra["family"] == "wan" and listed["wan"].model_extra["modes"] == ["edit", "text"]
