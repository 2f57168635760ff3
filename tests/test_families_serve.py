"""`kino serve` over a tiny Wan folder, through the official `openai` client and plain HTTP on loopback."""

from __future__ import annotations

import httpx
import pytest
from tiny_families import tiny_models  # noqa: F401  (the session fixture)

from kino.families import load_model
from kino.serve.app import create_app
from kino.serve.config import ServeConfig
from kino.serve.testing import ThreadServer, free_port, isolated_env, studio_page, wait_video

KEY = "sk-kino-families-key"
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def server(tiny_models, tmp_path_factory):  # noqa: F811
    with isolated_env(tmp_path_factory.mktemp("cfg")):
        folder = tiny_models["wan"]
        config = ServeConfig(model_dir=folder, data_dir=tmp_path_factory.mktemp("serve"), api_keys=(KEY,),
                             sizes=("16x16",), steps=2, max_seconds=4.0)
        with ThreadServer(create_app(config, [load_model(folder)], "wan"), free_port()) as s:
            yield s


def test_openai_client_with_a_wan_model(server, tmp_path):
    from openai import BadRequestError, OpenAI

    from kino.io import probe
    from kino.safety.provenance import read_manifest

    c = OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0, timeout=60)
    v = c.videos.create(prompt="a dog runs on the beach at sunset", seconds="1", size="16x16", model="wan")
    done = wait_video(c, v.id)
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
    # the studio builds its choices from /v1/kino/options: only these modes are shown
    opts = httpx.get(f"{server.url}/v1/kino/options", headers={"Authorization": f"Bearer {KEY}"}).json()
    assert opts["modes"] == ["edit", "text"] and opts["model"] == "wan"


def test_studio_shows_only_the_modes_of_the_model(server, tmp_path):
    """In a real browser (Chromium, as tests/test_serve_studio.py): a Wan T2V model hides the storyboard and
    interpolation tabs, the image input and the extend/loop/connect buttons; edit stays."""
    with studio_page(server.url, KEY, tmp_path / "profile") as page:
        assert page.locator("#tab-prompt").is_visible()
        assert not page.locator("#tab-board").is_visible() and not page.locator("#tab-interp").is_visible()
        assert not page.locator("#image").is_visible()
        page.wait_for_selector(".card")  # the video made by the test above
        card = page.locator(".card").first
        assert card.locator(".edit").is_visible() and card.locator(".remix").is_visible()
        for hidden in (".extend", ".loop", ".connect"):
            assert not card.locator(hidden).is_visible(), hidden


def test_serve_model_name_and_native_sizes(tiny_models, tmp_path, monkeypatch):  # noqa: F811
    from pathlib import Path

    from kino.serve.app import named_model

    assert named_model(Path("wan=/models/wan-1.3b")) == ("wan", Path("/models/wan-1.3b"))
    assert named_model(Path("/models/wan-1.3b")) == (None, Path("/models/wan-1.3b"))
    monkeypatch.setenv("KINO_CONFIG_DIR", str(tmp_path / "cfg"))
    folder = tiny_models["wan"]
    config = ServeConfig(model_dir=Path(f"wan={folder}"), data_dir=tmp_path / "serve", no_auth=True)
    with ThreadServer(create_app(config), free_port()) as s:  # loads through load_pipes, as `kino serve` does
        opts = httpx.get(f"{s.url}/v1/kino/options").json()
    # the default sizes were the tiny kino model's: a Wan model offers its own trained 832x480 and portrait
    assert opts["model"] == "wan" and opts["default_size"] == "832x480"
    assert opts["sizes"]["landscape"] == ["832x480"] and opts["sizes"]["portrait"] == ["480x832"]
