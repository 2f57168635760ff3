"""Load and fault test of `kino serve` on loopback, in three parts, printed as one table (BENCHMARKS.md):

1. the bad-media corpus, all at once: an MP4 of 3,000 frames at 320x240 (~85 KB), an MP4 of 60 frames
   at 3840x2160 (~28 KB), six PNGs each declaring 8192x8192, and a 61 MB JSON body; every one must get
   a 4xx, and the server's peak RSS (VmHWM, reset before) is compared with its idle RSS (model loaded);
2. a second `kino serve` on the same data directory, which must exit with one line, changing nothing;
3. N concurrent clients create videos for D seconds (honouring 429 + Retry-After, polling), with a
   kill -9 of the server half way and a restart on the same directory; at the end every job a client
   was given must be in the server's list exactly once and finished, and no response may be a 5xx.

    .venv/bin/python benchmarks/serve_load.py --clients 30 --duration 30

Bounded: 127.0.0.1 only, a fixed duration, a tiny randomly initialised model in a temporary folder.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

from kino.serve.testing import (
    free_port,
    hostile_media,
    rss_kb,
    second_server,
    send_all,
    start_subprocess,
    tiny_model_dir,
)


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
            try:
                poll = await http.get(f"{url}/v1/videos/{r.json()['id']}")  # a poll, as a client would
                stats["poll_codes"][poll.status_code] += 1
            except httpx.HTTPError as e:
                stats["transport_errors"].append(type(e).__name__)
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
    argv = ("--no-auth", "--no-enhance", "--queue-size", str(args.queue_size), "--max-active-per-key",
            str(args.queue_size))
    env = {"KINO_CONFIG_DIR": str(tmp / "cfg")}

    def start():
        return start_subprocess(model, tmp / "data", port, *argv, env=env, log=tmp / "server.log")

    proc = start()
    url = f"http://127.0.0.1:{port}"
    stats = {"codes": Counter(), "poll_codes": Counter(), "created": [], "post_latency": [], "unexpected": [],
             "transport_errors": []}
    csrf = {"X-Kino-CSRF": "1"}  # a form POST to a --no-auth server needs it (a cross-site form cannot send it)
    try:
        # 1. the bad-media corpus, all at once
        work = hostile_media(tmp, frames=3000, uhd_frames=60, pngs=6)
        idle = rss_kb(proc.pid)
        Path(f"/proc/{proc.pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
        t0 = time.monotonic()
        bad_codes = await asyncio.to_thread(send_all, url, work, csrf)
        json_61mb = httpx.post(f"{url}/v1/videos", json={"prompt": "x" * (61 * 2**20)}, timeout=120).status_code
        bad_s = time.monotonic() - t0
        peak_bad = rss_kb(proc.pid, "VmHWM")
        leftovers = [f.name for f in (tmp / "data" / "uploads").iterdir()]
        # 2. a second server on the same data directory
        second = await asyncio.to_thread(second_server, model, tmp / "data", env)
        second_lines = (second.stdout + second.stderr).strip().splitlines()
        # 3. load with a kill -9 half way
        limits = httpx.Limits(max_connections=args.clients + 5)
        Path(f"/proc/{proc.pid}/clear_refs").write_text("5")
        async with httpx.AsyncClient(timeout=60, limits=limits) as http:
            t0 = time.monotonic()
            load = asyncio.gather(*(client(http, url, t0 + args.duration, i, stats) for i in range(args.clients)))
            await asyncio.sleep(args.duration / 2)
            peak_load = rss_kb(proc.pid, "VmHWM")
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            proc = await asyncio.to_thread(start)
            await load
            load_s = time.monotonic() - t0
            drain_t0 = time.monotonic()
            while time.monotonic() - drain_t0 < args.drain:
                counts = (await http.get(f"{url}/health")).json()["jobs"]
                if counts["queued"] == 0 and counts["in_progress"] == 0:
                    break
                await asyncio.sleep(0.5)
            drain_s = time.monotonic() - drain_t0
            peak_load = max(peak_load, rss_kb(proc.pid, "VmHWM"))
            listed = await list_all(http, url)
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    created = stats["created"]
    ids = [v["id"] for v in listed]
    status = Counter(v["status"] for v in listed)
    lost = len(set(created) - set(ids))
    duplicated = (len(created) - len(set(created))) + (len(ids) - len(set(ids)))
    five = sum(n for c, n in (stats["codes"] + stats["poll_codes"]).items() if c >= 500)
    lat = sorted(stats["post_latency"])
    bad_ok = all(400 <= c < 500 for c in [*bad_codes, json_61mb])
    rows = [
        ("bad media: requests (3,000-frame MP4, 4K MP4, 6 x 8192x8192 PNG, 61 MB JSON)", len(bad_codes) + 1),
        ("bad media: status codes", " ".join(str(c) for c in [*bad_codes, json_61mb])),
        ("bad media: seconds", f"{bad_s:.1f}"), ("bad media: uploads left on disk", len(leftovers)),
        ("RSS idle, model loaded (MB)", f"{idle / 1024:.0f}"), ("RSS peak, bad media (MB)", f"{peak_bad / 1024:.0f}"),
        ("peak / idle", f"{peak_bad / idle:.2f}"),
        ("second server: exit code", second.returncode), ("second server: lines", len(second_lines)),
        ("clients", args.clients), ("load seconds (kill -9 + restart half way)", f"{load_s:.1f}"),
        ("POST requests", sum(stats["codes"].values())),
        ("created (200)", stats["codes"][200]), ("refused, queue full (429)", stats["codes"][429]),
        ("5xx (POST and polls)", five), ("other status", len(stats["unexpected"])),
        ("transport errors (while killed)", len(stats["transport_errors"])),
        ("POST latency p50 ms", f"{1000 * statistics.median(lat):.0f}" if lat else "-"),
        ("POST latency p95 ms", f"{1000 * lat[int(0.95 * (len(lat) - 1))]:.0f}" if lat else "-"),
        ("RSS peak under load (MB)", f"{peak_load / 1024:.0f}"),
        ("drain seconds", f"{drain_s:.1f}"), ("jobs completed", status["completed"]), ("jobs failed", status["failed"]),
        ("jobs unfinished", status["queued"] + status["in_progress"]),
        ("lost", lost), ("duplicated", duplicated),
    ]
    print("| measure | value |\n| --- | --- |")
    for k, v in rows:
        print(f"| {k} | {v} |")
    print("second server said:", *second_lines)
    failed = Counter(f"{v['error']['code']}: {v['error']['message'][:100]}" for v in listed if v["error"])
    for text, n in failed.most_common(5):
        print(f"failed x{n}: {text}")
    if stats["unexpected"]:
        print("unexpected:", *stats["unexpected"][:5], sep="\n  ")
    ok = (lost == 0 and duplicated == 0 and five == 0 and status["failed"] == 0 and bad_ok and not leftovers
          and status["queued"] + status["in_progress"] == 0 and second.returncode == 2 and len(second_lines) == 1
          and peak_bad < 1.5 * idle)
    print("OK: every bar met" if ok else "FAILED: see the table")
    return 0 if ok else 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=30)
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--queue-size", type=int, default=32)
    ap.add_argument("--drain", type=float, default=300.0, help="most seconds to wait for the queue to empty")
    raise SystemExit(asyncio.run(main_async(ap.parse_args())))


if __name__ == "__main__":
    main()
