"""The LoRAs a server applies (`kino serve --lora FILE[:SCALE]`) in GET /v1/models and beside the studio's
model picker, in a real browser (Debian's Chromium, headless, through Playwright, as tests/test_serve_studio.py)."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
import torch

from kino.serve.app import create_app
from kino.serve.config import ServeConfig
from kino.serve.testing import ThreadServer, free_port, shared_model_dir, studio_page

KEY = "sk-kino-lora-key"


def _lora_file(model_dir: Path, path: Path) -> Path:
    """A rank-2 LoRA of the tiny kino DiT with random up-projections (so it changes the output)."""
    from kino.families.lora import Expert, LoRASpec, add_lora, default_targets, lora_state, save_lora
    from kino.pipeline import KinoPipeline

    dit = KinoPipeline.from_pretrained(model_dir).transformer
    spec = LoRASpec(2, 2.0, default_targets("kino"))
    add_lora(dit, spec)
    torch.manual_seed(0)
    state = {k: torch.randn_like(v) * 0.1 for k, v in lora_state(dit).items()}
    return save_lora(path, state, spec, "kino", Expert.HIGH, {})


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from kino.families import load_model
    from kino.families.lora import LoRAUse, apply_model_loras

    mp = pytest.MonkeyPatch()
    mp.setenv("KINO_CONFIG_DIR", str(tmp_path_factory.mktemp("cfg")))
    model = shared_model_dir(tmp_path_factory)
    lora = _lora_file(model, tmp_path_factory.mktemp("lora") / "film-grain.safetensors")
    served = load_model(model)
    apply_model_loras(served, [LoRAUse(str(lora), 0.75)])  # what load_pipes does with --lora FILE:0.75
    config = ServeConfig(model_dir=model, data_dir=tmp_path_factory.mktemp("studio"), api_keys=(KEY,),
                         loras=(f"{lora}:0.75",))
    with ThreadServer(create_app(config, [served], "tiny"), free_port()) as s:
        yield s
    mp.undo()


def _get(server, path: str) -> dict:
    req = urllib.request.Request(server.url + path, headers={"Authorization": f"Bearer {KEY}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def test_models_and_options_list_the_loras(server):
    models = _get(server, "/v1/models")["data"]
    lora = {"name": "film-grain.safetensors", "scale": 0.75, "expert": "high"}
    assert models and all(m["loras"] == [lora] for m in models)  # under each name the model answers to
    assert _get(server, "/v1/kino/options")["served"]["tiny"]["loras"][0]["scale"] == 0.75
    assert str(Path("/")) not in json.dumps(models[0]["loras"])  # names only: the server's paths stay private


def test_studio_shows_the_loras_beside_the_model(server, tmp_path):
    errors: list[str] = []
    with studio_page(server.url, KEY, tmp_path / "profile", errors) as page:
        badge = page.locator("#loras")
        badge.wait_for(state="visible")
        assert badge.inner_text() == "LoRA film-grain.safetensors \u00d70.75"
        assert "high-noise expert" in badge.get_attribute("title")
        header = page.locator("header").inner_text()
        assert header.index("model tiny") < header.index("LoRA film-grain")  # beside the model's name
        assert not errors, errors
