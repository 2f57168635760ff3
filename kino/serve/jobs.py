"""The job store: one SQLite file in WAL mode that the API writes and the workers read.

Every state change is one short transaction (BEGIN IMMEDIATE), so a job is never lost or claimed twice,
across threads and across processes, and a server killed at any moment restarts from a consistent file:
`recover` turns jobs that were in progress into queued ones (or failed ones) before the workers start,
and `fail_unserved` fails queued jobs of a model the restarted server no longer serves.

    queued --claim--> in_progress --complete--> completed --expire--> completed (assets deleted)
                                  \\--fail-----> failed

Only one server writes a data directory (kino/serve/lock.py), so `recover` only ever sees jobs whose
server is gone. Expiry purges a job's prompts along with its files. Each job records the bytes it keeps
(inputs while it waits, then its videos and kept inputs), which the storage quotas add up.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from kino.serve.config import RestartPolicy

STATUSES = ("queued", "in_progress", "completed", "failed")

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    owner TEXT NOT NULL,
    status TEXT NOT NULL,
    progress INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    completed_at INTEGER,
    expires_at INTEGER,
    model TEXT NOT NULL,
    prompt TEXT,
    seconds TEXT NOT NULL,
    size TEXT NOT NULL,
    kind TEXT NOT NULL,
    params TEXT NOT NULL,
    remixed_from_video_id TEXT,
    error_code TEXT,
    error_message TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    expired INTEGER NOT NULL DEFAULT 0,
    enhanced_prompt TEXT,
    bytes INTEGER NOT NULL DEFAULT 0,
    served TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS jobs_owner ON jobs (owner, seq);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, seq);
"""
# `model` is the name the client gave (echoed back: "sora-2" or "kino" are names of the default model);
# `served` is the served model that runs the job: each model's workers claim only its jobs.


class QueueFull(Exception):
    """The queue holds queue_size jobs; `queued` says how many wait."""

    def __init__(self, queued: int, scope: str) -> None:
        super().__init__(f"{queued} jobs are queued")
        self.queued, self.scope = queued, scope


def new_id() -> str:
    """A server-made id: the only thing any stored file name is built from."""
    return "video_" + secrets.token_hex(16)


def valid_id(text: str) -> bool:
    return len(text) == 38 and text.startswith("video_") and all(c in "0123456789abcdef" for c in text[6:])


@dataclass(frozen=True)
class Job:
    id: str
    owner: str
    status: str
    progress: int
    created_at: int
    model: str
    prompt: str | None
    seconds: str
    size: str
    kind: str
    params: dict = field(default_factory=dict)
    started_at: int | None = None
    completed_at: int | None = None
    expires_at: int | None = None
    remixed_from_video_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    attempts: int = 0
    expired: bool = False
    seq: int = 0
    enhanced_prompt: str | None = None
    bytes: int = 0
    served: str = ""

    def is_expired(self, now: float | None = None) -> bool:
        """Expired, or past its expiry time even if the cleanup pass has not marked it yet."""
        now = time.time() if now is None else now
        return self.expired or (self.expires_at is not None and self.expires_at <= now)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Job:
        d = dict(row)
        d["params"] = json.loads(d["params"])
        d["expired"] = bool(d["expired"])
        return cls(**d)


class JobStore:
    """Jobs in `path` (SQLite, WAL). Safe to share between threads; each thread has its own connection."""

    def __init__(self, path: str | Path, timeout: float = 30.0, default_model: str = "kino") -> None:
        """`default_model`: the served model of jobs from a data directory written before several models
        could be served (their `served` column is filled with it)."""
        self.path = Path(path)
        self.timeout = timeout
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._local = threading.local()
        db = self._db()
        db.executescript(SCHEMA)
        have = {r["name"] for r in db.execute("PRAGMA table_info(jobs)")}
        for column, kind in (("enhanced_prompt", "TEXT"), ("bytes", "INTEGER NOT NULL DEFAULT 0"),
                             ("served", "TEXT NOT NULL DEFAULT ''")):
            if column not in have:  # a data directory written by an older kino
                db.execute(f"ALTER TABLE jobs ADD COLUMN {column} {kind}")
        db.execute("UPDATE jobs SET served = ? WHERE served = ''", (default_model,))

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, isolation_level=None, timeout=self.timeout, check_same_thread=False)
            db.row_factory = sqlite3.Row
            db.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # durable against a killed process (WAL)
            self._local.db = db
        return db

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    # -- writes ------------------------------------------------------------------------------------

    def create(self, *, owner: str, model: str, prompt: str | None, seconds: str, size: str, kind: str,
               params: dict, queue_size: int, max_active: int, remixed_from: str | None = None,
               nbytes: int = 0, served: str | None = None) -> Job:
        """Queue a job for the served model `served` (default: `model`); QueueFull when the queue (or this
        owner's share of it) is full."""
        now = int(time.time())
        jid = new_id()
        with self._tx() as db:
            queued = db.execute("SELECT COUNT(*) FROM jobs WHERE status = 'queued'").fetchone()[0]
            if queued >= queue_size:
                raise QueueFull(queued, "server")
            mine = db.execute("SELECT COUNT(*) FROM jobs WHERE owner = ? AND status IN ('queued', 'in_progress')",
                              (owner,)).fetchone()[0]
            if mine >= max_active:
                raise QueueFull(mine, "key")
            db.execute("INSERT INTO jobs (id, owner, status, created_at, model, prompt, seconds, size, kind, params,"
                       " remixed_from_video_id, bytes, served) VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (jid, owner, now, model, prompt, seconds, size, kind, json.dumps(params), remixed_from,
                        int(nbytes), served or model))
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (jid,)).fetchone()
        return Job.from_row(row)

    def claim(self, served: str | None = None) -> Job | None:
        """Take the oldest queued job (of the served model `served`, when given) and mark it in progress (one
        claimer wins)."""
        with self._tx() as db:
            if served is None:
                row = db.execute("SELECT id FROM jobs WHERE status = 'queued' ORDER BY seq LIMIT 1").fetchone()
            else:
                row = db.execute("SELECT id FROM jobs WHERE status = 'queued' AND served = ? ORDER BY seq LIMIT 1",
                                 (served,)).fetchone()
            if row is None:
                return None
            db.execute("UPDATE jobs SET status = 'in_progress', progress = 0, started_at = ?, attempts = attempts + 1"
                       " WHERE id = ?", (int(time.time()), row["id"]))
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (row["id"],)).fetchone()
        return Job.from_row(row)

    def set_progress(self, jid: str, progress: int) -> bool:
        """Record progress (0-100); False when the job is gone (deleted) or no longer running."""
        with self._tx() as db:
            cur = db.execute("UPDATE jobs SET progress = ? WHERE id = ? AND status = 'in_progress'",
                             (int(progress), jid))
        return cur.rowcount == 1

    def complete(self, jid: str, seconds: str, size: str, expires_at: int, enhanced_prompt: str | None = None,
                 nbytes: int | None = None) -> bool:
        now = int(time.time())
        with self._tx() as db:
            cur = db.execute("UPDATE jobs SET status = 'completed', progress = 100, completed_at = ?, expires_at = ?,"
                             " seconds = ?, size = ?, enhanced_prompt = ?, bytes = COALESCE(?, bytes)"
                             " WHERE id = ? AND status = 'in_progress'",
                             (now, expires_at, seconds, size, enhanced_prompt, nbytes, jid))
        return cur.rowcount == 1

    def fail(self, jid: str, code: str, message: str) -> bool:
        with self._tx() as db:
            cur = db.execute("UPDATE jobs SET status = 'failed', completed_at = ?, error_code = ?, error_message = ?,"
                             " bytes = 0 WHERE id = ? AND status IN ('queued', 'in_progress')",  # its inputs go
                             (int(time.time()), code, message[:1000], jid))
        return cur.rowcount == 1

    def delete(self, jid: str, owner: str) -> Job | None:
        """Remove a job (any status); returns it, or None when the owner has no such job."""
        with self._tx() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ? AND owner = ?", (jid, owner)).fetchone()
            if row is not None:
                db.execute("DELETE FROM jobs WHERE id = ?", (jid,))
        return None if row is None else Job.from_row(row)

    def recover(self, policy: RestartPolicy, max_attempts: int) -> tuple[int, int]:
        """On start: jobs left in progress by a dead server are queued again or failed. -> (requeued, failed)"""
        with self._tx() as db:
            failed = 0
            if policy is RestartPolicy.RETRY:
                requeued = db.execute("UPDATE jobs SET status = 'queued', progress = 0, started_at = NULL"
                                      " WHERE status = 'in_progress' AND attempts < ?", (max_attempts,)).rowcount
            else:
                requeued = 0
            failed = db.execute(
                "UPDATE jobs SET status = 'failed', completed_at = ?, error_code = 'server_restarted', error_message ="
                " 'the server stopped while this video was being generated' WHERE status = 'in_progress'",
                (int(time.time()),)).rowcount
        return requeued, failed

    def fail_unserved(self, served: list[str]) -> list[Job]:
        """On start: queued jobs of a model this server does not serve (it was restarted with other `--model`s)
        fail with code model_not_served, naming the models it serves; -> those jobs (their inputs go)."""
        names = list(served)
        marks = ", ".join("?" * len(names))
        with self._tx() as db:
            rows = db.execute(f"SELECT * FROM jobs WHERE status = 'queued' AND served NOT IN ({marks}) ORDER BY seq",
                              names).fetchall()
            db.executemany("UPDATE jobs SET status = 'failed', completed_at = ?, error_code = 'model_not_served',"
                           " error_message = ?, bytes = 0 WHERE id = ?",
                           [(int(time.time()), f"model {r['served']} is not served by this server; served: "
                             f"{', '.join(names)}", r["id"]) for r in rows])
        return [Job.from_row(r) for r in rows]

    def expire(self, now: int | None = None) -> list[tuple[str, list[str]]]:
        """Mark completed jobs whose assets expired and purge their prompts (the prompt, the enhanced prompt
        and the stored request); -> [(id, stored input names)] for the caller to delete the files."""
        now = int(time.time()) if now is None else now
        with self._tx() as db:
            rows = db.execute("SELECT id, params FROM jobs WHERE status = 'completed' AND expired = 0 AND"
                              " expires_at <= ?", (now,)).fetchall()
            out = [(r["id"], list(json.loads(r["params"]).get("inputs_all", []))) for r in rows]
            db.executemany("UPDATE jobs SET expired = 1, prompt = NULL, enhanced_prompt = NULL, params = '{}',"
                           " bytes = 0 WHERE id = ?", [(i,) for i, _ in out])
        return out

    def purge_failed(self) -> int:
        """Failed jobs keep no prompt once their error is reported for a day (they have no files)."""
        with self._tx() as db:
            return db.execute("UPDATE jobs SET prompt = NULL, params = '{}' WHERE status = 'failed' AND"
                              " completed_at < ? AND params != '{}'", (int(time.time()) - 24 * 3600,)).rowcount

    # -- reads ---------------------------------------------------------------------------------------

    def get(self, jid: str, owner: str | None = None) -> Job | None:
        db = self._db()
        if owner is None:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (jid,)).fetchone()
        else:
            row = db.execute("SELECT * FROM jobs WHERE id = ? AND owner = ?", (jid, owner)).fetchone()
        return None if row is None else Job.from_row(row)

    def list(self, owner: str, after: str | None = None, limit: int = 20, order: str = "desc"
             ) -> tuple[list[Job], bool]:
        """One page of the owner's jobs, newest first (desc) or oldest first; -> (jobs, has_more)."""
        db = self._db()
        op, direction = ("<", "DESC") if order == "desc" else (">", "ASC")
        args: list = [owner]
        where = "owner = ?"
        if after:
            row = db.execute("SELECT seq FROM jobs WHERE id = ? AND owner = ?", (after, owner)).fetchone()
            if row is None:
                raise KeyError(after)
            where += f" AND seq {op} ?"
            args.append(row["seq"])
        rows = db.execute(f"SELECT * FROM jobs WHERE {where} ORDER BY seq {direction} LIMIT ?",
                          (*args, limit + 1)).fetchall()
        return [Job.from_row(r) for r in rows[:limit]], len(rows) > limit

    def pressure(self, owner: str) -> tuple[int, int]:
        """(jobs queued on the server, unfinished jobs of this owner): the cheap check before any work."""
        db = self._db()
        queued = db.execute("SELECT COUNT(*) FROM jobs WHERE status = 'queued'").fetchone()[0]
        mine = db.execute("SELECT COUNT(*) FROM jobs WHERE owner = ? AND status IN ('queued', 'in_progress')",
                          (owner,)).fetchone()[0]
        return queued, mine

    def usage(self, owner: str) -> tuple[int, int]:
        """Bytes kept (videos and inputs of unexpired jobs): (this owner's, everyone's)."""
        db = self._db()
        mine = db.execute("SELECT COALESCE(SUM(bytes), 0) FROM jobs WHERE owner = ? AND expired = 0",
                          (owner,)).fetchone()[0]
        total = db.execute("SELECT COALESCE(SUM(bytes), 0) FROM jobs WHERE expired = 0").fetchone()[0]
        return int(mine), int(total)

    def counts(self) -> dict[str, int]:
        rows = self._db().execute("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status").fetchall()
        return {s: 0 for s in STATUSES} | {r["status"]: r["n"] for r in rows}

    def by_status(self, status: str) -> list[Job]:
        rows = self._db().execute("SELECT * FROM jobs WHERE status = ? ORDER BY seq", (status,)).fetchall()
        return [Job.from_row(r) for r in rows]

    def ids(self) -> set[str]:
        return {r["id"] for r in self._db().execute("SELECT id FROM jobs")}

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None
