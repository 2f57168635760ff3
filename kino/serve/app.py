"""The server's process: one FastAPI app that holds the loaded models (one or several, `--model` repeated),
the job store, the workers and the studio, built from a ServeConfig.

On start (before the port opens): take the data directory's lock (one server per directory; a second
one stops here, having changed nothing), load each served model once per device, work out each one's
sizes, default size and length and frame rate (kino.serve.served; a size it cannot make stops here),
warm the prompt classifier, recover jobs a dead server left in progress, fail queued jobs of a model no
longer served (one log line; the video reports error code model_not_served), then start one worker per
model and device (each claims only its model's jobs) and a cleanup thread that deletes expired assets and
orphaned uploads.

/health says "ok" (200) while every worker lives and moves, "degraded" (503) when one died or has not
moved on its job for `stuck_seconds`. /docs is a page of this package that reads /openapi.json (no
script from a CDN, under a Content-Security-Policy of 'self').
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

from kino.errors import InputError
from kino.serve import errors
from kino.serve.config import OPENAI_MODELS, ServeConfig
from kino.serve.files import Storage
from kino.serve.intake import decoders
from kino.serve.jobs import JobStore
from kino.serve.lock import DataDirLock
from kino.serve.security import BodyLimit, KeyGuard, NoAuthGuard
from kino.serve.worker import Worker

log = logging.getLogger("kino.serve")


class Service:
    """What the routes share: config, store, storage, model facts, safety config and workers."""

    def __init__(self, config: ServeConfig, pipes: list, model_name: str, lock: DataDirLock | None = None,
                 more: dict[str, list] | None = None) -> None:
        """`pipes`: the default model, one per worker; `more`: further served models, name -> one per worker."""
        from kino.enhance import make_enhancer
        from kino.generation import as_model
        from kino.safety import SafetyConfig
        from kino.serve.served import check_named_sizes, serve_model

        self.config = config
        self.lock = lock or DataDirLock(config.data_dir).acquire()  # before the store or any file is touched
        self.store = JobStore(config.data_dir / "jobs.sqlite3", timeout=config.db_timeout, default_model=model_name)
        self.storage = Storage(config.data_dir)
        self.model_name = model_name
        # served name -> loaded models (kino.families.VideoModel), one per worker; the first is the default
        loaded = {model_name: [as_model(p) for p in pipes]}
        for name, ms in (more or {}).items():
            if name in loaded:
                raise InputError(f"--model {name}= is given twice; give each model its own NAME=DIR")
            loaded[name] = [as_model(p) for p in ms]
        check_named_sizes(config, list(loaded))
        # ... as ServedModels: each with its own sizes, default size and length, fps and frame limits
        self.served = {name: serve_model(name, ms, config) for name, ms in loaded.items()}
        # the default model answers to "kino" and OpenAI's names too (unless a served model is named so)
        self.models = list(dict.fromkeys([*self.served, "kino", *OPENAI_MODELS]))
        self.decoders = decoders(config.max_decoders)
        self.key_guard = KeyGuard(config.key_failures_per_minute)
        default = self.served[model_name].model
        self.safety = SafetyConfig.load(config.safety_policy)
        # kino's own text encoder is shared with the policy; another family's (T5, UMT5) is not the policy's
        self.encoder = (getattr(getattr(default, "pipe", None), "text_encoder", None)
                        if default.family == "kino" else None)
        self.enhancer = make_enhancer(family=default.family)  # offline, a real-world model takes prompts as written
        self.wake = threading.Event()
        # one worker per loaded model; each claims only its served model's jobs (a slow model does not hold
        # up a fast one's queue)
        self.workers = []
        for name, sm in self.served.items():
            enhancer = self.enhancer if name == model_name else make_enhancer(family=sm.model.family)
            self.workers += [Worker(self.store, self.storage, config, m, name, self.safety, enhancer, self.wake,
                                    name=f"kino-worker-{len(self.workers) + i}") for i, m in enumerate(sm.models)]
        self.stopping = threading.Event()
        self.cleaner = threading.Thread(target=self._clean_loop, name="kino-cleanup", daemon=True)

    def served_name(self, name: str) -> str:
        """The served model that runs a request naming `name` (an alias such as "sora-2": the default)."""
        return name if name in self.served else self.model_name

    def serving(self, name: str):
        """The ServedModel (kino.serve.served: loaded copies, sizes, defaults, fps) behind the name `name`."""
        return self.served[self.served_name(name)]

    def model(self, name: str):
        """The loaded model (the first worker's) behind the name `name`."""
        return self.serving(name).model

    def seconds_per_job(self) -> float:
        return sum(w.seconds_per_job for w in self.workers) / len(self.workers)

    def start(self) -> None:
        from kino.safety import check_prompt

        check_prompt("a red circle", self.safety, self.encoder)  # loads the classifier before the first request
        requeued, failed = self.store.recover(self.config.on_restart, self.config.max_attempts)
        if requeued or failed:
            log.warning("restart: %d interrupted jobs queued again, %d failed", requeued, failed)
        gone = self.store.fail_unserved(list(self.served))  # restarted with other --models: say so, not wait
        for job in gone:
            self.storage.delete_inputs(job.params.get("inputs_all", []))
        if gone:
            log.warning("restart: %d queued jobs failed: model %s is not served by this server (served: %s)",
                        len(gone), ", ".join(sorted({j.served for j in gone})), ", ".join(self.served))
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
        self.store.close()
        self.lock.release()

    def health(self) -> tuple[int, dict]:
        workers = [w.state() for w in self.workers]
        ok = all(w["alive"] and not w["stuck"] for w in workers)
        try:
            jobs = self.store.counts()
        except Exception as e:  # the store is unavailable: say so rather than fail
            jobs, ok = {"error": f"the job store is unavailable ({type(e).__name__})"}, False
        return (200 if ok else 503), {"status": "ok" if ok else "degraded", "jobs": jobs, "workers": len(workers),
                                      "worker_states": workers}

    def clean(self, now: int | None = None) -> int:
        """Delete expired assets and uploads no unfinished or unexpired job needs; returns the number of expired
        videos."""
        expired = self.store.expire(now)
        for jid, inputs in expired:
            self.storage.delete_assets(jid)
            self.storage.delete_inputs(inputs)
        self.store.purge_failed()
        needed = set()
        for status in ("queued", "in_progress", "completed"):  # a completed video's inputs serve its remixes
            for job in self.store.by_status(status):
                if not job.expired:
                    needed.update(job.params.get("inputs_all", []))
        cutoff = time.time() - 600  # an upload is saved a moment before its job is queued
        for f in self.storage.uploads.iterdir():
            if f.name not in needed and not f.name.startswith(".") and f.stat().st_mtime < cutoff:
                f.unlink(missing_ok=True)
        return len(expired)

    def _clean_loop(self) -> None:
        while not self.stopping.wait(self.config.cleanup_interval):
            try:
                self.clean()
            except Exception:
                log.exception("cleanup failed")


def load_pipes(config: ServeConfig, model: Path | None = None) -> tuple[list, str]:
    """One pipeline per device, loaded once; -> (pipes, model name). `model`: [NAME=]DIR (default:
    config.model_dir)."""
    from kino.commands.generate import resolve_model_dir
    from kino.families import load_model

    if config.threads:
        import torch

        torch.set_num_threads(config.threads)
    name, model_dir = named_model(config.model_dir if model is None else model)
    model_dir = resolve_model_dir(model_dir)
    # any family: a kino pipeline folder, or a diffusers LTX-Video / Wan folder (kino.families)
    models = [load_model(model_dir, device=d) for d in config.devices]
    if config.loras:  # each worker's copy gets the LoRAs; the manifest of every video lists them
        from kino.families.lora import LoRAUse, apply_model_loras

        for m in models:
            apply_model_loras(m, [LoRAUse.parse(t) for t in config.loras])
    return models, name or Path(model_dir).name


def named_model(model: Path | None) -> tuple[str | None, Path | None]:
    """`--model NAME=DIR` -> (NAME, DIR): the name clients give as `model` (default: the folder's name)."""
    text = str(model) if model is not None else ""
    name, eq, rest = text.partition("=")
    if eq and name and "/" not in name and not Path(text).exists():
        return name, Path(rest)
    return None, model


def create_app(config: ServeConfig, pipes: list | None = None, model_name: str | None = None,
               lock: DataDirLock | None = None, more: dict[str, list] | None = None) -> FastAPI:
    """The app. `pipes` (already loaded pipelines, one per worker) skip loading from config.model_dir, and
    `more` (name -> loaded pipelines) from config.more_models; `lock` is the data directory's lock when the
    caller took it already (InputError if another holds it)."""
    from kino.serve.api import router

    lock = lock or DataDirLock(config.data_dir).acquire()
    try:
        if pipes is None:
            pipes, model_name = load_pipes(config)
        if more is None:
            more = {}
            for text in config.more_models:
                ms, name = load_pipes(config, text)
                more[name] = ms
        svc = Service(config, pipes, model_name or "kino", lock, more)
    except BaseException:
        lock.release()
        raise

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        svc.start()
        yield
        svc.stop()

    app = FastAPI(title="kino serve", version=_version(), lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="OpenAI's Videos API (Sora), served by kino's own model; kino's modes as extensions.")
    app.state.service = svc
    errors.install(app)
    app.include_router(router)
    app.add_middleware(BodyLimit, limit=config.max_request_bytes)
    if config.no_auth:
        app.add_middleware(NoAuthGuard)
    _openapi_with_bodies(app)

    studio = resources.files("kino.serve") / "studio"
    app.mount("/studio", StaticFiles(directory=str(studio)), name="studio")

    @app.get("/", include_in_schema=False)
    def index():
        return FileResponse(str(studio / "index.html"), media_type="text/html", headers={"Content-Security-Policy": CSP})

    @app.get("/docs", include_in_schema=False)
    def docs():
        return FileResponse(str(studio / "docs.html"), media_type="text/html", headers={"Content-Security-Policy": CSP})

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon():
        return FileResponse(str(studio / "favicon.svg"), media_type="image/svg+xml")

    @app.get("/health", include_in_schema=False)
    def health():
        status, body = svc.health()
        return JSONResponse(body, status_code=status)

    return app


CSP = "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; object-src 'none'; frame-ancestors 'none'"


def _openapi_with_bodies(app: FastAPI) -> None:
    """/openapi.json with the request bodies' nested models (schemas.body_schema) under components."""
    from fastapi.openapi.utils import get_openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            components = spec.setdefault("components", {}).setdefault("schemas", {})
            for item in spec.get("paths", {}).values():
                for op in item.values():
                    components.update(op.pop("x-kino-defs", {}) if isinstance(op, dict) else {})
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi


def _version() -> str:
    import kino

    return getattr(kino, "__version__", "0")


__all__ = ["ServeConfig", "create_app"]
