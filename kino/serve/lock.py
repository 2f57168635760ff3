"""One writer per data directory: an exclusive lock on DATA/serve.lock, held for the server's whole life.

A second `kino serve` on the same directory fails to take it and stops with one line before it opens the
job store or touches a file (before, it re-queued the live server's running job, which then ran twice and
the losing run deleted the finished video). The lock is an OS lock on an open file (fcntl.flock): the
kernel drops it when the process dies, even by kill -9, so a crashed server never leaves a stale lock, and
the next server's restart recovery touches only jobs whose owner is gone.
"""

from __future__ import annotations

import os
from pathlib import Path

from kino.errors import InputError


class DataDirLock:
    """Hold the data directory's lock; InputError (one line) when another process holds it."""

    def __init__(self, data_dir: str | os.PathLike) -> None:
        self.path = Path(data_dir) / "serve.lock"
        self.file = None

    def acquire(self) -> DataDirLock:
        import fcntl

        created = not self.path.parent.exists()
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if created:
            os.chmod(self.path.parent, 0o700)  # mkdir's mode is masked by the umask
        f = open(self.path, "a+b")  # noqa: SIM115 - held open for the process's life: the lock lives with it
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read(32).decode(errors="replace").strip() or "unknown"
            f.close()
            raise InputError(f"data directory {self.path.parent} is in use by another kino serve (pid {holder}); "
                             f"stop it or give another --data-dir") from None
        f.truncate(0)
        f.write(str(os.getpid()).encode())
        f.flush()
        self.file = f
        return self

    def release(self) -> None:
        if self.file is not None:
            self.file.close()  # closing the file drops the lock (so does the process's end, even kill -9)
            self.file = None

    def __enter__(self) -> DataDirLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
