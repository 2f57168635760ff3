"""Recaptioning against a local OpenAI-compatible server: success, malformed reply, retry, timeout."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from kino.data.captioner import (
    OpenAICaptioner,
    OpenAIConfig,
    caption_manifest,
    jpeg_data_url,
    parse_levels,
    pick_frames,
)
from kino.data.manifest import ClipKind, ClipRecord, read_manifest, read_sidecar, write_manifest
from kino.errors import InputError, ModelError
from kino.io import write_video

GOOD = {"short": "a red ball", "medium": "A red ball rolls left.", "detailed": "A red ball rolls left on grass."}


class Handler(BaseHTTPRequestHandler):
    """Behaviour by model name: ok, malformed, flaky (500 then ok), slow (sleeps past the timeout)."""

    calls: list = []
    flaky_failures: dict = {}

    def log_message(self, *args):  # keep pytest's output clean
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Handler.calls.append((self.path, self.headers.get("Authorization"), body))
        model = body["model"]
        if model == "slow":
            time.sleep(0.6)
        if model == "flaky" and Handler.flaky_failures.get("n", 0) < 1:
            Handler.flaky_failures["n"] = Handler.flaky_failures.get("n", 0) + 1
            self.send_response(500)
            self.end_headers()
            return
        content = "sorry, I cannot do JSON" if model == "malformed" else "```json\n" + json.dumps(GOOD) + "\n```"
        reply = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


def _frames(n=5):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (32, 48, 3), dtype=np.uint8) for _ in range(n)]


def _captioner(url, model, **kw):
    sleeps = []
    cfg = OpenAIConfig(base_url=url, model=model, api_key="k123", timeout=kw.pop("timeout", 5.0), backoff=0.01, **kw)
    return OpenAICaptioner(cfg, sleep=sleeps.append), sleeps


def test_success_sends_frames_as_data_urls(server):
    Handler.calls.clear()
    cap, sleeps = _captioner(server, "ok", num_frames=2)
    assert cap.caption(_frames(), {}) == GOOD
    path, auth, body = Handler.calls[-1]
    assert path == "/v1/chat/completions" and auth == "Bearer k123"
    parts = body["messages"][0]["content"]
    images = [p for p in parts if p["type"] == "image_url"]
    assert len(images) == 2 and images[0]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert sleeps == []


def test_malformed_reply_is_a_model_error(server):
    cap, _ = _captioner(server, "malformed")
    with pytest.raises(ModelError, match="not a JSON object"):
        cap.caption(_frames(), {})


def test_500_then_success_retries_with_backoff(server):
    Handler.flaky_failures.clear()
    cap, sleeps = _captioner(server, "flaky", retries=2)
    assert cap.caption(_frames(), {}) == GOOD
    assert sleeps == [0.01]


def test_timeout_gives_up_after_retries(server):
    cap, sleeps = _captioner(server, "slow", timeout=0.2, retries=1)
    with pytest.raises(ModelError, match="failed after 2 tries"):
        cap.caption(_frames(), {})
    assert sleeps == [0.01]


def test_parse_levels_and_helpers():
    assert parse_levels('here: {"short": "x", "other": 1}') == {"short": "x"}
    with pytest.raises(ModelError):
        parse_levels('{"foo": "bar"}')
    assert jpeg_data_url(_frames(1)[0]).startswith("data:image/jpeg;base64,")
    f = np.arange(10)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)
    assert [int(x[0, 0, 0]) for x in pick_frames(f, 3)] == [0, 4, 9]  # linspace 0, 4.5, 9 rounds half to even


def test_config_from_env(monkeypatch):
    monkeypatch.setenv("KINO_CAPTION_BASE_URL", "http://h:1/v1")
    monkeypatch.setenv("KINO_CAPTION_MODEL", "m")
    cfg = OpenAIConfig.from_env(timeout=3.0)
    assert (cfg.base_url, cfg.model, cfg.timeout) == ("http://h:1/v1", "m", 3.0)
    with pytest.raises(InputError, match="http"):
        OpenAIConfig(base_url="ftp://x")


def test_caption_manifest_records_failures_and_is_atomic(server, tmp_path):
    frames = np.stack(_frames(8))
    write_video(tmp_path / "a.mp4", frames, fps=8)
    recs = [
        ClipRecord(id="a#0", path="a.mp4", kind=ClipKind.VIDEO, start=0, end=1.0, width=48, height=32, fps=8,
                   num_frames=8, source_fps=8),
        ClipRecord(id="gone#0", path="gone.mp4", kind=ClipKind.VIDEO, start=0, end=1.0, width=48, height=32,
                   fps=8, num_frames=8, source_fps=8),
    ]
    m = tmp_path / "m.jsonl"
    write_manifest(m, recs)
    cap, _ = _captioner(server, "ok")
    report = caption_manifest(m, cap)
    assert report.captioned == 1 and [f[0] for f in report.failed] == ["gone#0"]
    out = read_manifest(m)
    assert out[0].captions == GOOD and out[1].captions == {}
    assert read_sidecar(m)["caption_errors"][0]["id"] == "gone#0"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left
    again = caption_manifest(m, cap)  # already captioned clips are kept
    assert again.kept == 1 and again.captioned == 0


def test_openai_backend_has_no_default_endpoint(monkeypatch):
    """kino serve's own address is no captioner: without --base-url the openai backend says what to set."""
    monkeypatch.delenv("KINO_CAPTION_BASE_URL", raising=False)
    with pytest.raises(InputError, match="needs an endpoint.*--backend world"):
        OpenAIConfig.from_env()


def test_caption_cli_fails_when_every_clip_failed(server, tmp_path, monkeypatch, capsys):
    """Every clip failing is an error (exit 7), not "captioned 0 clips" and exit 0 (issue 16 #15)."""
    from kino.cli import main

    monkeypatch.delenv("KINO_CAPTION_BASE_URL", raising=False)
    write_video(tmp_path / "a.mp4", np.stack(_frames(8)), fps=8)
    rec = ClipRecord(id="a#0", path="a.mp4", kind=ClipKind.VIDEO, start=0, end=1.0, width=48, height=32, fps=8,
                     num_frames=8, source_fps=8)
    m = tmp_path / "m.jsonl"
    write_manifest(m, [rec])
    with pytest.raises(SystemExit) as e:
        main(["data", "caption", str(m)])
    assert e.value.code == 2 and "needs an endpoint" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["data", "caption", str(m), "--base-url", server, "--model", "malformed", "--retries", "0"])
    out, err = capsys.readouterr()
    assert e.value.code == 7 and "every clip failed to caption (1 of 1)" in err, (out, err)
    with pytest.raises(SystemExit) as e:
        main(["data", "caption", str(m), "--base-url", server, "--model", "ok"])
    assert e.value.code == 0 and "captioned 1 clip," in capsys.readouterr().out
