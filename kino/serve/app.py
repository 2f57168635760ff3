"""The server's process: one FastAPI app that holds the loaded model, the job store, the workers and the
studio, built from a ServeConfig.

On start (before the port opens): load the pipeline once per device, check the configured sizes
against it, warm the prompt classifier, recover jobs a dead server left in progress, then start one
worker per device and a cleanup thread that deletes expired assets and orphaned uploads.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from kino.serve import errors
from kino.serve.config import OPENAI_MODELS, ServeConfig, parse_size
from kino.serve.files import Storage
from kino.serve.jobs import JobStore
from kino.serve.security import BodyLimit
from kino.serve.worker import Worker

log = logging.getLogger("kino.serve")


class Service:
    """What the routes share: config, store, storage, model facts, safety config and workers."""

    def __init__(self, config: ServeConfig, pipes: list, model_name: str) -> None:
        from kino.enhance import make_enhancer
        from kino.safety import SafetyConfig

        self.config = config
        self.store = JobStore(config.data_dir / "jobs.sqlite3")
        self.storage = Storage(config.data_dir)
        self.model_name = model_name
        self.models = list(dict.fromkeys([model_name, "kino", *OPENAI_MODELS]))
        pipe = pipes[0]
        s = pipe.scheduler
        for size in config.sizes:
            w, h = parse_size(size)
            pipe.check_inputs("x", w, h, 1, s.fps, 1)  # InputError names the nearest valid sizes
        self.fps = float(s.fps)
        self.max_frames = pipe.max_frames
        self.default_size = config.default_size or (f"{s.width}x{s.height}" if f"{s.width}x{s.height}" in config.sizes
                                                    else config.sizes[0])
        self.default_seconds = config.default_seconds or min(float(s.seconds), config.max_seconds)
        self.safety = SafetyConfig.load(config.safety_policy)
        self.encoder = pipe.text_encoder
        self.enhancer = make_enhancer()
        self.wake = threading.Event()
        self.workers = [Worker(self.store, self.storage, config, p, model_name, self.safety, self.enhancer, self.wake,
                               name=f"kino-worker-{i}") for i, p in enumerate(pipes)]
        self.stopping = threading.Event()
        self.cleaner = threading.Thread(target=self._clean_loop, name="kino-cleanup", daemon=True)

    def seconds_per_job(self) -> float:
        return sum(w.seconds_per_job for w in self.workers) / len(self.workers)

    def start(self) -> None:
        from kino.safety import check_prompt

        check_prompt("a red circle", self.safety, self.encoder)  # loads the classifier before the first request
        requeued, failed = self.store.recover(self.config.on_restart, self.config.max_attempts)
        if requeued or failed:
            log.warning("restart: %d interrupted jobs queued again, %d failed", requeued, failed)
        for w in self.workers:
            w.start()
        self.cleaner.start()

    def stop(self) -> None:
        self.stopping.set()
        for w in self.workers:
            w.stop()
        for w in self.workers:
            if w.is_alive():
                w.join(timeout=30)

    def clean(self, now: int | None = None) -> int:
        """Delete expired assets and uploads no unfinished or unexpired job needs; returns the number of expired
        videos."""
        ids = self.store.expire(now)
        for jid in ids:
            self.storage.delete_assets(jid)
            job = self.store.get(jid)
            if job is not None:
                self.storage.delete_inputs(job.params.get("inputs_all", []))
        needed = set()
        for status in ("queued", "in_progress", "completed"):  # a completed video's inputs serve its remixes
            for job in self.store.by_status(status):
                if not job.expired:
                    needed.update(job.params.get("inputs_all", []))
        cutoff = time.time() - 600  # an upload is saved a moment before its job is queued
        for f in self.storage.uploads.iterdir():
            if f.name not in needed and not f.name.startswith(".") and f.stat().st_mtime < cutoff:
                f.unlink(missing_ok=True)
        return len(ids)

    def _clean_loop(self) -> None:
        while not self.stopping.wait(self.config.cleanup_interval):
            try:
                self.clean()
            except Exception:
                log.exception("cleanup failed")


def load_pipes(config: ServeConfig) -> tuple[list, str]:
    """One pipeline per device, loaded once; -> (pipes, model name)."""
    from kino.commands.generate import resolve_model_dir
    from kino.pipeline import KinoPipeline

    if config.threads:
        import torch

        torch.set_num_threads(config.threads)
    model_dir = resolve_model_dir(config.model_dir)
    return [KinoPipeline.from_pretrained(model_dir, device=d) for d in config.devices], Path(model_dir).name


def create_app(config: ServeConfig, pipes: list | None = None, model_name: str | None = None) -> FastAPI:
    """The app. `pipes` (already loaded pipelines, one per worker) skip loading from config.model_dir."""
    from kino.serve.api import router

    if pipes is None:
        pipes, model_name = load_pipes(config)
    svc = Service(config, pipes, model_name or "kino")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        svc.start()
        yield
        svc.stop()

    app = FastAPI(title="kino serve", version=_version(), lifespan=lifespan,
                  description="OpenAI's Videos API (Sora), served by kino's own model; kino's modes as extensions.")
    app.state.service = svc
    errors.install(app)
    app.include_router(router)
    app.add_middleware(BodyLimit, limit=config.max_request_bytes)

    studio = resources.files("kino.serve") / "studio"
    app.mount("/studio", StaticFiles(directory=str(studio)), name="studio")

    @app.get("/", include_in_schema=False)
    def index():
        return FileResponse(str(studio / "index.html"), media_type="text/html")

    @app.get("/health", include_in_schema=False)
    def health():
        return JSONResponse({"status": "ok", "jobs": svc.store.counts(), "workers": len(svc.workers)})

    return app


def _version() -> str:
    import kino

    return getattr(kino, "__version__", "0")


__all__ = ["ServeConfig", "create_app"]
