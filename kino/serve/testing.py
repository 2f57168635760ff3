"""Helpers for the server's tests and load benchmark: a tiny model directory, a free port, and real uvicorn
servers on 127.0.0.1 (in a thread of this process, or as a `kino serve` subprocess)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def tiny_model_dir(directory: str | os.PathLike, steps: int = 2) -> Path:
    """A very small pipeline directory (narrow VAE, one-block DiT): a 64x64 second takes well under a second."""
    import torch

    from kino.models.dit import DiT, DiTConfig
    from kino.models.text import TextEncoder
    from kino.models.vae import CausalVAE, VAEConfig
    from kino.pipeline import KinoPipeline, SchedulerConfig

    d = Path(directory)
    if (d / "model_index.json").is_file():
        return d
    torch.manual_seed(0)
    vae = CausalVAE(VAEConfig(latent_channels=4, patch_size=4, widths=(8, 8, 8)))
    dit = DiT(DiTConfig(in_channels=4, out_channels=4, dim=32, depth=1, num_heads=2, ffn_dim=64, text_dim=384))
    pipe = KinoPipeline(dit, vae, TextEncoder(), SchedulerConfig(num_inference_steps=steps, seconds=1.0))
    return pipe.save_pretrained(d)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 120.0, proc: subprocess.Popen | None = None) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"no server on port {port} after {timeout:g} s")


class ThreadServer:
    """A uvicorn server for `app` on 127.0.0.1:port in a background thread of this process."""

    def __init__(self, app, port: int) -> None:
        import uvicorn

        self.app, self.port = app, port
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        wait_for_port(self.port)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def wait_for_health(port: int, timeout: float = 120.0, proc: subprocess.Popen | None = None) -> None:
    """Until GET /health answers: `kino serve` binds its port before it loads the model, so an open port
    does not mean it serves yet."""
    import httpx

    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=2.0)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise TimeoutError(f"no server on port {port} after {timeout:g} s")


def start_subprocess(model_dir: Path, data_dir: Path, port: int, *args: str, env: dict | None = None,
                     log: Path | None = None) -> subprocess.Popen:
    """`python -m kino serve` on 127.0.0.1:port; returns once it serves (the model is loaded)."""
    cmd = [sys.executable, "-m", "kino", "serve", "--model", str(model_dir), "--data-dir", str(data_dir),
           "--port", str(port), "--threads", "1", *args]
    out = open(log, "ab") if log is not None else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    wait_for_health(port, proc=proc)
    return proc


_PIPES: dict[str, object] = {}


def shared_pipe(model_dir: str | os.PathLike):
    """One loaded pipeline per model directory for the whole test session (its MiniLM loads once)."""
    from kino.pipeline import KinoPipeline

    key = str(model_dir)
    if key not in _PIPES:
        _PIPES[key] = KinoPipeline.from_pretrained(model_dir)
    return _PIPES[key]


def shared_model_dir(tmp_path_factory) -> Path:
    """The tiny model, written once per test session (into pytest's temporary folders)."""
    if "model_dir" not in _PIPES:
        _PIPES["model_dir"] = tiny_model_dir(tmp_path_factory.mktemp("serve-model") / "tiny")
    return _PIPES["model_dir"]


def write_plain_mp4(path: str | os.PathLike, frames: int, width: int, height: int, fps: int = 8) -> Path:
    """A small MP4 of `frames` identical frames (H.264, ultrafast): many frames or a large picture in few bytes,
    the shape of the hostile uploads the server must refuse from their headers."""
    import av
    import numpy as np

    path = Path(path)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.options = {"preset": "ultrafast", "crf": "40"}
        frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), 90, np.uint8), format="rgb24")
        for _ in range(frames):
            for packet in s.encode(frame):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)
    return path


def png_declaring(width: int, height: int) -> bytes:
    """A valid PNG of width x height black pixels, written row by row (a few hundred KB at 8192x8192): a small
    upload whose header declares a huge picture."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    z = zlib.compressobj(1)
    row = b"\x00" + bytes(width * 3)  # filter byte + RGB
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def rss_kb(pid: int, field: str = "VmRSS") -> int:
    """A process's resident memory in kB from /proc (VmRSS: now; VmHWM: the peak)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def second_server(model_dir: Path, data_dir: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """`kino serve` on a data directory another server holds (it must exit with one line)."""
    return subprocess.run([sys.executable, "-m", "kino", "serve", "--no-auth", "--model", str(model_dir), "--data-dir",
                           str(data_dir), "--port", str(free_port())], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def hostile_media(folder: Path, frames: int = 3000, uhd_frames: int = 4, pngs: int = 6) -> list[tuple[str, dict, dict]]:
    """(path under /v1/videos, form fields, files) of the bad-input corpus: an MP4 of `frames` frames (a few KB),
    a 3840x2160 MP4, and `pngs` PNGs each declaring 8192x8192."""
    many = write_plain_mp4(Path(folder) / "many.mp4", frames, 320 if frames > 1000 else 64, 240 if frames > 1000 else 48)
    uhd = write_plain_mp4(Path(folder) / "uhd.mp4", uhd_frames, 3840, 2160)
    huge = png_declaring(8192, 8192)
    work = [("/extensions", {"seconds": "1"}, {"video": many.read_bytes()}),
            ("/extensions", {"seconds": "1"}, {"video": uhd.read_bytes()})]
    return work + [("", {"prompt": "a green ball"}, {"input_reference": huge})] * pngs


def send_all(url: str, work: list, headers: dict | None = None) -> list[int]:
    """POST every item of `work` at once (one thread each); -> the status codes."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    def post(item):
        path, fields, files = item
        return httpx.post(f"{url}/v1/videos{path}", headers=headers or {}, data=fields, files=files,
                          timeout=300).status_code

    with ThreadPoolExecutor(len(work)) as pool:
        return list(pool.map(post, work))


# what a test server must not inherit from the developer's shell (their keys, policy, enhancer, options)
SERVER_ENV = ("KINO_C2PA_CERT", "KINO_C2PA_KEY", "KINO_SAFETY_POLICY", "KINO_ENHANCE_BACKEND", "KINO_MODEL_OPTIONS")


@contextmanager
def isolated_env(config_dir: str | os.PathLike) -> Iterator[None]:
    """KINO_CONFIG_DIR set to `config_dir` and SERVER_ENV unset while the block runs, then restored."""
    saved = {k: os.environ.get(k) for k in ("KINO_CONFIG_DIR", *SERVER_ENV)}
    os.environ["KINO_CONFIG_DIR"] = str(config_dir)
    for k in SERVER_ENV:
        os.environ.pop(k, None)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def wait_video(client, vid: str, timeout: float = 90.0, progress: list | None = None):
    """Poll an `openai` client until video `vid` is completed or failed (TimeoutError after `timeout`);
    each poll's progress is appended to `progress` when given."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        v = client.videos.retrieve(vid)
        if progress is not None:
            progress.append(v.progress)
        if v.status in ("completed", "failed"):
            return v
        time.sleep(0.1)
    raise TimeoutError(vid)


CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync")


@contextmanager
def studio_page(url: str, key: str, profile: str | os.PathLike, errors: list | None = None) -> Iterator:
    """A headless Debian Chromium (Playwright) on the studio at `url`, signed in with `key` and ready.

    Without Chromium the test is skipped, or fails under CI (.ci/run installs it). Page errors are
    appended to `errors` when given.
    """
    import shutil

    import pytest

    chromium = os.environ.get("KINO_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).is_file():
        if os.environ.get("CI"):
            pytest.fail(f"Chromium is not installed at {chromium}; .ci/run installs Debian's chromium with apt")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(str(profile), executable_path=chromium, headless=True,
                                                   args=list(CHROMIUM_ARGS))
        try:
            page = ctx.pages[0] if ctx.pages else ctx.new_page()
            if errors is not None:
                page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url + "/")
            page.wait_for_selector("#key-box:not([hidden])")
            page.fill("#api-key", key)
            page.press("#api-key", "Enter")
            page.wait_for_selector("#status:has-text('ready')")
            yield page
        finally:
            ctx.close()
