"""The worker: one thread per device, running one generation at a time from the job store.

A job's `params` (written by the API) say everything needed to run it again after a restart: the mode,
the prompt, sizes, the seed (chosen when the job was made, so a retry gives the same video) and the
server-made names of its stored inputs. The worker turns them into a GenerationRequest (or a
Storyboard) and calls the same publishing path as the command line (kino.generation.generate_file),
reporting progress per sampling step into the store.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback

from kino.errors import InputError, KinoError, MediaError, ModelError, PolicyError, one_line
from kino.serve.config import ServeConfig
from kino.serve.files import Storage
from kino.serve.jobs import Job, JobStore

log = logging.getLogger("kino.serve")


class Cancelled(Exception):
    """The job was deleted while it ran."""


def error_code(e: BaseException) -> str:
    """The `error.code` a failed video reports."""
    if isinstance(e, PolicyError):
        return "moderation_blocked"
    if isinstance(e, MediaError):
        return "invalid_media"
    if isinstance(e, InputError):
        return "invalid_request"
    if isinstance(e, ModelError):
        return "model_error"
    return "internal_error"


class Progress:
    """callback(step, total) -> monotonic percent in the store; a step that goes back starts a new phase
    (loop makes its body, then the seam), so the bar never runs backwards. Stops the job if it was deleted."""

    def __init__(self, store: JobStore, jid: str, phases: int = 1) -> None:
        self.store, self.jid, self.phases = store, jid, max(1, phases)
        self.phase, self.last_step, self.percent = 0, -1, 0

    def __call__(self, step: int, total: int) -> None:
        if step < self.last_step:
            self.phase = min(self.phase + 1, self.phases - 1)
        self.last_step = step
        p = int(99 * (self.phase + step / max(total, 1)) / self.phases)  # 100 only once published
        if p > self.percent:
            self.percent = p
            if not self.store.set_progress(self.jid, p):
                raise Cancelled


class Worker(threading.Thread):
    """Runs queued jobs on one pipeline until stopped."""

    def __init__(self, store: JobStore, storage: Storage, config: ServeConfig, pipe, model_name: str,
                 safety, enhancer, wake: threading.Event, name: str = "kino-worker") -> None:
        super().__init__(name=name, daemon=True)
        self.store, self.storage, self.config = store, storage, config
        self.pipe, self.model_name, self.safety, self.enhancer = pipe, model_name, safety, enhancer
        self.wake, self.stopping = wake, threading.Event()
        self.seconds_per_job = 10.0  # running mean, for Retry-After

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                job = self.store.claim()
            except Exception:  # a locked or busy database: try again shortly
                log.exception("claiming a job failed")
                job = None
            if job is None:
                self.wake.wait(0.5)
                self.wake.clear()
                continue
            t0 = time.perf_counter()
            self.run_job(job)
            self.seconds_per_job = 0.8 * self.seconds_per_job + 0.2 * (time.perf_counter() - t0)

    def run_job(self, job: Job) -> None:
        out = self.storage.asset(job.id)
        p = job.params
        done = False
        try:
            result = self._generate(job, out, Progress(self.store, job.id, p.get("phases", 1)))
            self.storage.write_previews(job.id, result.output.frames)
            frames = len(result.output.frames)
            fps = float(result.output.settings.fps)
            h, w = result.output.frames.shape[1:3]
            done = self.store.complete(job.id, f"{frames / fps:g}", f"{w}x{h}",
                                       int(time.time()) + self.config.expiry_seconds)
            if not done:  # deleted while it ran
                self.storage.delete_assets(job.id)
        except Cancelled:
            self.storage.delete_assets(job.id)
        except Exception as e:
            self.storage.delete_assets(job.id)
            if not isinstance(e, KinoError):
                log.error("job %s failed:\n%s", job.id, traceback.format_exc())
            message = one_line(e)
            if isinstance(e, PolicyError):
                message = f"{message} (category: {e.category})"
            elif not isinstance(e, KinoError):
                message = f"internal error: {type(e).__name__}: {message}"
            self.store.fail(job.id, error_code(e), message)
        finally:  # a finished video keeps its inputs (a remix reuses them) until it is deleted or expires
            if not done:
                self.storage.delete_inputs(p.get("inputs_all", []))

    def _generate(self, job: Job, out, progress: Progress):
        from kino.generation import GenerationRequest, generate_file

        p = job.params
        inp = p.get("inputs", {})
        path = self.storage.input_path
        if p["mode"] == "storyboard":
            from kino.storyboard import generate_storyboard_file, load_storyboard

            board = load_storyboard(p["storyboard"])
            return generate_storyboard_file(self.pipe, board, out, model_name=self.model_name, safety=self.safety,
                                            enhancer=self.enhancer, callback=progress, enhance=p["enhance"],
                                            steps=p.get("steps"), seed=p["seed"])
        request = GenerationRequest(
            p["prompt"], seconds=p["seconds"], width=p["width"], height=p["height"], steps=p.get("steps"),
            seed=p["seed"], enhance=p["enhance"], mode=p["mode"],
            from_image=path(inp["from_image"]) if inp.get("from_image") else None,
            video=path(inp["video"]) if inp.get("video") else None,
            videos=tuple(path(v) for v in inp.get("videos", ())),
            keyframes=tuple(path(k) for k in inp.get("keyframes", ())),
            strength=p.get("strength"), backward=bool(p.get("backward", False)))
        return generate_file(self.pipe, request, out, model_name=self.model_name, safety=self.safety,
                             enhancer=self.enhancer, callback=progress)
