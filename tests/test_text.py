"""Text encoders: the packaged MiniLM offline, masks, truncation, caches, folders."""

from __future__ import annotations

import json
import os
import warnings

import pytest
import torch

from kino.errors import InputError, ModelError
from kino.models.text import TextEncoder, TextEncoderConfig, TextEncoderKind, packaged_minilm_dir


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    return TextEncoder(TextEncoderConfig(max_length=16))


def test_packaged_model_folder_found():
    d = packaged_minilm_dir()
    assert (d / "config.json").is_file() and (d / "tokenizer.json").is_file()


def test_token_states_and_mask(encoder):
    emb = encoder.encode(["a red circle moves left on a blue background", "a cat"])
    assert emb.hidden.shape[0] == 2 and emb.hidden.shape[2] == encoder.dim == 384
    lengths = emb.mask.sum(1).tolist()
    assert lengths[0] > lengths[1] >= 3  # [CLS] a cat [SEP]
    assert emb.hidden[1, lengths[1]:].abs().sum() == 0  # padding is zero
    # different prompts, different states; the same prompt alone or in a batch, the same states
    alone = encoder.encode("a cat")
    assert torch.allclose(alone.hidden[0], emb.hidden[1, : lengths[1]], atol=1e-5)
    assert not torch.allclose(emb.hidden[0, :3], emb.hidden[1, :3])


def test_offline_flag_is_scoped(encoder):
    before = os.environ.get("HF_HUB_OFFLINE")
    TextEncoder(TextEncoderConfig()).encode("x")
    assert os.environ.get("HF_HUB_OFFLINE") == before


def test_truncation_warns(encoder):
    with pytest.warns(UserWarning, match="keeps the first 16"):
        emb = encoder.encode(" ".join(["red"] * 40))
    assert emb.mask.sum() == 16


def test_lru_and_disk_cache(tmp_path, encoder):
    enc = TextEncoder(TextEncoderConfig(max_length=16, cache_size=1, cache_dir=str(tmp_path)))
    a = enc.encode("a green square").hidden
    files = list(tmp_path.glob("*.safetensors"))
    assert len(files) == 1
    enc.encode("a yellow star")
    assert list(enc._lru) == ["a yellow star"]  # LRU of size 1
    fresh = TextEncoder(TextEncoderConfig(max_length=16, cache_dir=str(tmp_path)))
    b = fresh.encode("a green square").hidden  # read from disk: the model is never loaded
    assert fresh._model is None and torch.equal(a, b)


def test_folder_roundtrip_and_errors(tmp_path, encoder):
    encoder.save_pretrained(tmp_path / "te")
    cfg = json.loads((tmp_path / "te" / "config.json").read_text())
    assert cfg["kino_text_encoder"] == TextEncoderKind.PACKAGED_MINILM and cfg["max_length"] == 16
    assert sorted(p.name for p in (tmp_path / "te").iterdir()) == ["config.json"]
    back = TextEncoder.from_pretrained(tmp_path / "te")
    assert back.config.kind == TextEncoderKind.PACKAGED_MINILM and back.config.max_length == 16
    with pytest.raises(ModelError):
        TextEncoder.from_pretrained(tmp_path / "nothing")
    with pytest.raises(InputError):
        TextEncoderConfig(kind=TextEncoderKind.HF_DIR)


def test_any_hf_directory(tmp_path):
    # a local HF directory (here a copy of the MiniLM folder) loads through the generic path
    import shutil

    d = tmp_path / "hf"
    shutil.copytree(packaged_minilm_dir(), d)
    enc = TextEncoder(TextEncoderConfig(kind=TextEncoderKind.HF_DIR, path=str(d)))
    assert enc.encode("a cat").hidden.shape[-1] == 384
    # kino's own BERT (kino/models/minilm.py) runs the packaged copy: the same tokens and states
    native = TextEncoder()
    for prompt in ("a cat", "A Red circle, moving LEFT over a café!", " ".join(["blue"] * 200)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the long one is truncated, by both
            a, b = enc.encode(prompt).hidden, native.encode(prompt).hidden
            assert enc.token_ids(prompt) == native.token_ids(prompt)
        assert a.shape == b.shape and torch.allclose(a, b, atol=1e-4)


def test_the_encoder_sees_the_normalized_prompt(encoder):
    # what the policy judged (kino.safety.normalize) is exactly what the model is conditioned on
    from kino.safety.normalize import normalize_prompt

    for raw in ("mic\u00adkey mouse dancing", "a \u200bred\u2060 ｃｉｒｃｌｅ", "caf\u00e9 \ufeffﬁsh"):
        clean = normalize_prompt(raw)
        assert encoder.token_ids(raw) == encoder.token_ids(clean)
        assert torch.equal(encoder.encode(raw).hidden, encoder.encode(clean).hidden)
    # NFKC matters to the tokenizer itself: full-width letters are other tokens
    assert encoder._tok.ids("ｃｉｒｃｌｅ") != encoder._tok.ids("circle")


def test_minilm_weights_load_once_per_process(tmp_path):
    # the safety classifier and the pipeline's text encoder share one copy of the MiniLM weights
    import subprocess
    import sys

    code = (
        "from kino.safety import check_prompt\n"
        "from kino.models import text\n"
        "from kino.pipeline import KinoPipeline, builtin_model_dir\n"
        "from kino.safety.classifier import shared_encoder\n"
        "check_prompt('a red circle moves left on a blue background')\n"
        "pipe = KinoPipeline.from_pretrained(builtin_model_dir())\n"
        "pipe.text_encoder.encode('a red circle')\n"
        "assert pipe.text_encoder._model is shared_encoder()._model\n"
        "print(text.load_count())\n"
    )
    env = {**os.environ, "KINO_CONFIG_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["1"]


def test_concurrent_encodes_restore_the_thread_count():
    # the MiniLM pass runs on one thread; encoders in several threads (the server) must not leave
    # torch on one thread when they are done
    from concurrent.futures import ThreadPoolExecutor

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        enc = TextEncoder()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda i: enc.encode(f"a red circle number {i} moves left"), range(12)))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
