"""Load test of `kino serve` on loopback: N concurrent clients create videos for D seconds, honour 429 +
Retry-After, poll, and at the end every job a client was given must be in the server's list exactly once
and finished. Prints a table (the figures go to BENCHMARKS.md).

    .venv/bin/python benchmarks/serve_load.py --clients 50 --duration 30

Bounded: 127.0.0.1 only, a fixed duration, a tiny randomly initialised model in a temporary folder.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

from kino.serve.testing import free_port, start_subprocess, tiny_model_dir


async def client(http: httpx.AsyncClient, url: str, stop_at: float, i: int, stats: dict) -> None:
    n = 0
    while time.monotonic() < stop_at:
        t0 = time.perf_counter()
        try:
            r = await http.post(f"{url}/v1/videos", json={"prompt": f"a red ball bouncing {i}-{n}", "seconds": "1",
                                                           "size": "64x64"})
        except httpx.HTTPError as e:
            stats["transport_errors"].append(type(e).__name__)
            await asyncio.sleep(0.1)
            continue
        stats["post_latency"].append(time.perf_counter() - t0)
        stats["codes"][r.status_code] += 1
        if r.status_code == 200:
            stats["created"].append(r.json()["id"])
            n += 1
            await http.get(f"{url}/v1/videos/{r.json()['id']}")  # a poll, as a client would
        elif r.status_code == 429:
            await asyncio.sleep(min(float(r.headers.get("Retry-After", "1")), 2.0))
        else:
            stats["unexpected"].append(f"{r.status_code} {r.text[:120]}")


async def list_all(http: httpx.AsyncClient, url: str) -> list[dict]:
    out, after = [], None
    while True:
        page = (await http.get(f"{url}/v1/videos", params={"limit": 100, "order": "asc",
                                                            **({"after": after} if after else {})})).json()
        out += page["data"]
        if not page["has_more"]:
            return out
        after = page["last_id"]


async def main_async(args) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="kino-serve-load-"))
    model = tiny_model_dir(tmp / "model")
    port = free_port()
    # --no-enhance: this measures serving; enhanced prompts are checked by the policy again in the worker,
    # and a refusal there is a failed (not a lost) job
    proc = start_subprocess(model, tmp / "data", port, "--no-auth", "--no-enhance", "--queue-size", str(args.queue_size),
                            "--max-active-per-key", str(args.queue_size), env={"KINO_CONFIG_DIR": str(tmp / "cfg")},
                            log=tmp / "server.log")
    url = f"http://127.0.0.1:{port}"
    stats = {"codes": Counter(), "created": [], "post_latency": [], "unexpected": [], "transport_errors": []}
    try:
        limits = httpx.Limits(max_connections=args.clients + 5)
        async with httpx.AsyncClient(timeout=60, limits=limits) as http:
            t0 = time.monotonic()
            await asyncio.gather(*(client(http, url, t0 + args.duration, i, stats) for i in range(args.clients)))
            load_s = time.monotonic() - t0
            drain_t0 = time.monotonic()
            while time.monotonic() - drain_t0 < args.drain:
                counts = (await http.get(f"{url}/health")).json()["jobs"]
                if counts["queued"] == 0 and counts["in_progress"] == 0:
                    break
                await asyncio.sleep(0.5)
            drain_s = time.monotonic() - drain_t0
            listed = await list_all(http, url)
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    created = stats["created"]
    ids = [v["id"] for v in listed]
    status = Counter(v["status"] for v in listed)
    lost = len(set(created) - set(ids))
    duplicated = (len(created) - len(set(created))) + (len(ids) - len(set(ids)))
    lat = sorted(stats["post_latency"])
    rows = [
        ("clients", args.clients), ("load seconds", f"{load_s:.1f}"), ("POST requests", sum(stats["codes"].values())),
        ("POST /s", f"{sum(stats['codes'].values()) / load_s:.1f}"),
        ("created (200)", stats["codes"][200]), ("refused, queue full (429)", stats["codes"][429]),
        ("other status", len(stats["unexpected"])), ("transport errors", len(stats["transport_errors"])),
        ("POST latency p50 ms", f"{1000 * statistics.median(lat):.0f}" if lat else "-"),
        ("POST latency p95 ms", f"{1000 * lat[int(0.95 * (len(lat) - 1))]:.0f}" if lat else "-"),
        ("drain seconds", f"{drain_s:.1f}"), ("completed", status["completed"]), ("failed", status["failed"]),
        ("unfinished", status["queued"] + status["in_progress"]),
        ("videos per second", f"{status['completed'] / (load_s + drain_s):.2f}"),
        ("lost", lost), ("duplicated", duplicated),
    ]
    print("| measure | value |\n| --- | --- |")
    for k, v in rows:
        print(f"| {k} | {v} |")
    failed = Counter(f"{v['error']['code']}: {v['error']['message'][:100]}" for v in listed if v["error"])
    for text, n in failed.most_common(5):
        print(f"failed x{n}: {text}")
    if stats["unexpected"]:
        print("unexpected:", *stats["unexpected"][:5], sep="\n  ")
    ok = lost == 0 and duplicated == 0 and status["failed"] == 0 and status["queued"] + status["in_progress"] == 0
    print("OK: no lost or duplicated job" if ok else "FAILED: see the table")
    return 0 if ok else 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--queue-size", type=int, default=32)
    ap.add_argument("--drain", type=float, default=300.0, help="most seconds to wait for the queue to empty")
    raise SystemExit(asyncio.run(main_async(ap.parse_args())))


if __name__ == "__main__":
    main()
