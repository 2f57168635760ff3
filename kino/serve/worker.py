"""The worker: one thread per device, running one generation at a time from the job store.

A job's `params["request"]` is the generation request itself (kino.generation.GenerationRequest's
fields, JSON as the API built and checked it: the mode, prompt, sizes, the seed chosen when the job was
made, so a retry gives the same video, and the paths of its stored inputs). The worker rebuilds it as
`GenerationRequest(**stored)` and calls the one publishing path (kino.generation.generate_file),
reporting progress per sampling step into the store.

The worker never dies of a job: any exception fails that job with a one-line error; when the store
itself is unavailable (locked by another process, disk full) the write is retried with backoff until it
succeeds, and the next job runs. Its heartbeat and state feed /health, which reports a worker that died
or has not moved for `stuck_seconds`.
"""

from __future__ import annotations

import logging
import sqlite3
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
    if isinstance(e, OSError) and e.errno == 28:
        return "insufficient_storage"
    return "internal_error"


class Progress:
    """callback(step, total) -> monotonic percent in the store; a step that goes back starts a new phase
    (loop makes its body, then the seam), so the bar never runs backwards. Stops the job if it was deleted.
    A progress write the store refuses (locked, full) is skipped: the job goes on."""

    def __init__(self, worker: Worker, jid: str, phases: int = 1) -> None:
        self.worker, self.store, self.jid, self.phases = worker, worker.store, jid, max(1, phases)
        self.phase, self.last_step, self.percent = 0, -1, 0

    def __call__(self, step: int, total: int) -> None:
        self.worker.beat()
        if step < self.last_step:
            self.phase = min(self.phase + 1, self.phases - 1)
        self.last_step = step
        p = int(99 * (self.phase + step / max(total, 1)) / self.phases)  # 100 only once published
        if p > self.percent:
            self.percent = p
            try:
                running = self.store.set_progress(self.jid, p)
            except sqlite3.Error:
                log.warning("job %s: progress not recorded (the job store is unavailable)", self.jid)
                return
            if not running:
                raise Cancelled


class Worker(threading.Thread):
    """Runs queued jobs on one model until stopped."""

    def __init__(self, store: JobStore, storage: Storage, config: ServeConfig, model, model_name: str,
                 safety, enhancer, wake: threading.Event, name: str = "kino-worker") -> None:
        super().__init__(name=name, daemon=True)
        self.store, self.storage, self.config = store, storage, config
        self.model, self.model_name, self.safety, self.enhancer = model, model_name, safety, enhancer
        self.wake, self.stopping = wake, threading.Event()
        self.seconds_per_job = 10.0  # running mean, for Retry-After
        self.heartbeat = time.monotonic()
        self.job_id: str | None = None  # the job it runs now
        self.failure: str | None = None  # why the thread ended, if it did by an error

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()

    def beat(self) -> None:
        self.heartbeat = time.monotonic()

    def state(self) -> dict:
        """For /health: alive, the job it runs, seconds since it last moved, stuck."""
        idle = time.monotonic() - self.heartbeat
        stuck = self.job_id is not None and idle > self.config.stuck_seconds
        return {"name": self.name, "alive": self.is_alive(), "job": self.job_id, "seconds_since_beat": round(idle, 1),
                "stuck": stuck, **({"error": self.failure} if self.failure else {})}

    def run(self) -> None:
        try:
            self._loop()
        except BaseException as e:  # never expected; /health then reports it
            self.failure = f"{type(e).__name__}: {one_line(e)}"
            log.critical("worker %s stopped:\n%s", self.name, traceback.format_exc())
            raise

    def _loop(self) -> None:
        while not self.stopping.is_set():
            self.beat()
            try:
                job = self.store.claim(self.model_name)  # only its served model's jobs
            except sqlite3.Error:  # a locked or full database: try again shortly
                log.warning("claiming a job failed (the job store is unavailable); retrying")
                job = None
                self.stopping.wait(1.0)
            if job is None:
                self.wake.wait(0.5)
                self.wake.clear()
                continue
            t0 = time.perf_counter()
            self.job_id = job.id
            try:
                self.run_job(job)
            finally:
                self.job_id = None
            self.seconds_per_job = 0.8 * self.seconds_per_job + 0.2 * (time.perf_counter() - t0)

    def run_job(self, job: Job) -> None:
        """Generate one job and record how it ended; never raises."""
        out = self.storage.asset(job.id)
        inputs = job.params.get("inputs_all", [])
        done = False
        try:
            result = self._generate(job, out, Progress(self, job.id, job.params.get("phases", 1)))
            self.storage.write_previews(job.id, result.output.frames)
            frames = len(result.output.frames)
            fps = float(result.output.fps)
            h, w = result.output.frames.shape[1:3]
            nbytes = self.storage.asset_bytes(job.id) + self.storage.size_of(inputs)
            enhanced = result.model_prompt if result.enhanced else None
            done = self._write(lambda: self.store.complete(job.id, f"{frames / fps:g}", f"{w}x{h}",
                                                           int(time.time()) + self.config.expiry_seconds,
                                                           enhanced, nbytes))
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
            elif isinstance(e, OSError) and e.errno == 28:
                message = "the server's disk is full; the video could not be written"
            elif not isinstance(e, KinoError):
                message = f"internal error: {type(e).__name__}: {message}"
            code = error_code(e)
            self._write(lambda: self.store.fail(job.id, code, message))
        finally:  # a finished video keeps its inputs (a remix reuses them) until it is deleted or expires
            if not done:
                self.storage.delete_inputs(inputs)

    def _write(self, fn) -> bool:
        """A store write that must happen (a job's end): retried with backoff while the store is
        unavailable, until it succeeds or the server stops."""
        delay = 0.1
        while True:
            try:
                return fn()
            except sqlite3.Error as e:
                log.warning("the job store is unavailable (%s); retrying in %.1f s", one_line(e), delay)
                self.beat()
                if self.stopping.wait(delay):
                    return False
                delay = min(delay * 2, 5.0)

    def _generate(self, job: Job, out, progress: Progress):
        from kino.generation import GenerationRequest, generate_file

        return generate_file(self.model, GenerationRequest(**job.params["request"]), out, model_name=self.model_name,
                             safety=self.safety, enhancer=self.enhancer, callback=progress)
