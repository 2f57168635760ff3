"""The job store (SQLite, WAL) and ServeConfig, without a model or a server."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from kino.errors import InputError
from kino.serve.config import RestartPolicy, ServeConfig
from kino.serve.jobs import JobStore, QueueFull, valid_id


def make(store: JobStore, owner: str = "a", queue_size: int = 100, max_active: int = 100, prompt: str = "p"):
    return store.create(owner=owner, model="m", prompt=prompt, seconds="1", size="64x64", kind="text",
                        params={"prompt": prompt}, queue_size=queue_size, max_active=max_active)


def test_wal_mode_and_server_made_ids(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    job = make(store)
    assert valid_id(job.id) and job.status == "queued" and job.params == {"prompt": "p"}
    assert sqlite3.connect(tmp_path / "jobs.sqlite3").execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert not valid_id("../jobs") and not valid_id("video_" + "g" * 32)


def test_each_job_is_claimed_once_across_threads(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    made = {make(store, prompt=str(i)).id for i in range(60)}
    claimed: list[str] = []
    lock = threading.Lock()

    def claimer():
        while (job := store.claim()) is not None:
            with lock:
                claimed.append(job.id)
            store.complete(job.id, "1", "64x64", 0)

    threads = [threading.Thread(target=claimer) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(made)  # none lost, none twice
    assert store.counts()["completed"] == 60


def test_queue_and_per_key_limits(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    make(store, "a", queue_size=3, max_active=2)
    make(store, "a", queue_size=3, max_active=2)
    with pytest.raises(QueueFull) as e:
        make(store, "a", queue_size=3, max_active=2)
    assert e.value.scope == "key"
    make(store, "b", queue_size=3, max_active=2)
    with pytest.raises(QueueFull) as e:
        make(store, "c", queue_size=3, max_active=2)
    assert e.value.scope == "server" and e.value.queued == 3


@pytest.mark.parametrize("policy", [RestartPolicy.RETRY, RestartPolicy.FAIL])
def test_restart_recovery(tmp_path, policy):
    store = JobStore(tmp_path / "jobs.sqlite3")
    a, b = make(store), make(store)
    assert store.claim().id == a.id  # a was running when the server died; b waited
    store.close()
    store = JobStore(tmp_path / "jobs.sqlite3")  # the restarted server
    assert store.recover(policy, max_attempts=2) == ((1, 0) if policy is RestartPolicy.RETRY else (0, 1))
    got = store.get(a.id)
    if policy is RestartPolicy.RETRY:
        assert got.status == "queued" and got.attempts == 1
        assert store.claim().id == a.id  # first in line again
        store.close()
        store = JobStore(tmp_path / "jobs.sqlite3")  # ... and it dies again: out of attempts
        assert store.recover(policy, max_attempts=2) == (0, 1)
        got = store.get(a.id)
    assert got.status == "failed" and got.error_code == "server_restarted"
    assert store.get(b.id).status == "queued"


def test_list_pages_delete_and_expiry(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    ids = [make(store).id for _ in range(5)]
    make(store, owner="other")
    page, more = store.list("a", limit=2, order="asc")
    assert [j.id for j in page] == ids[:2] and more
    page, more = store.list("a", after=ids[1], limit=10, order="asc")
    assert [j.id for j in page] == ids[2:] and not more
    page, _ = store.list("a", limit=10)
    assert [j.id for j in page] == ids[::-1]
    with pytest.raises(KeyError):
        store.list("other", after=ids[0])  # another owner's id is unknown
    assert store.delete(ids[0], "other") is None and store.delete(ids[0], "a").id == ids[0]
    job = store.claim()
    store.complete(job.id, "1", "64x64", expires_at=1000)
    assert store.expire(now=999) == [] and store.expire(now=1000) == [(job.id, [])] and store.expire(now=2000) == []
    gone = store.get(job.id)
    assert gone.expired and gone.prompt is None and gone.params == {}  # its prompt purged with its files


def test_config_is_checked_when_built(tmp_path):
    with pytest.raises(InputError, match="needs an API key"):
        ServeConfig()
    with pytest.raises(InputError, match="only allowed on a loopback host"):
        ServeConfig(host="0.0.0.0", no_auth=True)
    with pytest.raises(InputError, match="on_restart 'later' is not valid; choose one of retry, fail"):
        ServeConfig(no_auth=True, on_restart="later")
    c = ServeConfig(no_auth=True)
    assert c.resolve_size("1280x720") == (112, 64) and c.resolve_size("1024x1792") == (128, 224)
    assert c.resolve_size("64x64") == (64, 64) and c.resolve_seconds("4") == 4.0
    with pytest.raises(InputError, match="valid sizes are 64x64, 112x64"):
        c.resolve_size("65x64")
    for bad in ("0", "nan", "21", "x"):
        with pytest.raises(InputError, match=r"seconds"):
            c.resolve_seconds(bad)
