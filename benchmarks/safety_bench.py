"""Prompt classifier: block rate on the red-team set and false-positive rate on the benign set.

    .venv/bin/python benchmarks/safety_bench.py [--show-misses]

Prints one row per category (red-team: blocked / total, and whether the category was right) and
per benign source (rejected / total), then the totals against the targets (>= 95% blocked,
<= 2% benign rejected). Both sets are in tests/data/*.jsonl. The "dev" prompts were written with
the term lists and the lists were tuned on them; the "heldout" ones (red-team rows with
"split": "heldout", benign source "heldout") were written afterwards and never tuned on: they are
an estimate, but they were looked at on 2026-11-29 while the training set was extended. The
"fresh" prompts (tests/data/*_v2.jsonl: red-team "split": "fresh", benign source "fresh") were
written after that, before any measurement on them, and are never tuned on: the honest estimate.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"


def load(name: str) -> list[dict]:
    return [
        json.loads(line) for line in (DATA / name).read_text(encoding="utf-8").splitlines() if line.strip()
    ]


def main() -> None:
    from kino.safety.policy import load_policy_file
    from kino.safety.prompts import check_prompt

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--show-misses", action="store_true", help="print every miss and false positive")
    args = ap.parse_args()
    config = load_policy_file()
    check_prompt("warm up the profanity model", config)

    red = load("redteam_prompts.jsonl") + load("redteam_prompts_v2.jsonl")
    benign = load("benign_prompts.jsonl") + load("benign_prompts_v2.jsonl")
    t0 = time.perf_counter()
    per = defaultdict(lambda: [0, 0, 0])  # category -> [total, blocked, blocked as this category]
    misses, fps = [], []
    for row in red:
        d = check_prompt(row["prompt"], config)
        s = per[(row.get("split", "dev"), row["category"])]
        s[0] += 1
        s[1] += not d.allowed
        s[2] += (not d.allowed) and d.category.value == row["category"]
        if d.allowed:
            misses.append(row)
    ben = defaultdict(lambda: [0, 0])
    for row in benign:
        d = check_prompt(row["prompt"], config)
        s = ben[row["source"]]
        s[0] += 1
        s[1] += not d.allowed
        if not d.allowed:
            fps.append((row["prompt"], d.category.value, d.reason))
    ms = 1000 * (time.perf_counter() - t0) / (len(red) + len(benign))

    print(f"{'red-team category':<28}{'prompts':>8}{'blocked':>9}{'rate':>8}{'right cat.':>11}")
    for split in ("dev", "heldout", "fresh"):
        for (sp, cat), (n, b, r) in per.items():
            if sp == split:
                print(f"{split + ' ' + cat:<28}{n:>8}{b:>9}{100 * b / n:>7.1f}%{100 * r / n:>10.1f}%")
        n = sum(v[0] for k, v in per.items() if k[0] == split)
        b = sum(v[1] for k, v in per.items() if k[0] == split)
        print(f"{split + ' all':<28}{n:>8}{b:>9}{100 * b / n:>7.1f}%   (target >= 95%)")
    print()
    print(f"{'benign source':<28}{'prompts':>8}{'rejected':>9}{'rate':>8}")
    for src, (m, r) in ben.items():
        print(f"{src:<28}{m:>8}{r:>9}{100 * r / m:>7.1f}%")
    m, r = sum(v[0] for v in ben.values()), sum(v[1] for v in ben.values())
    print(f"{'all':<28}{m:>8}{r:>9}{100 * r / m:>7.1f}%   (target <= 2%)")
    m, r = ben["fresh"]
    print(f"{'fresh only':<28}{m:>8}{r:>9}{100 * r / m:>7.1f}%   (target <= 2%)")
    print(f"\n{ms:.2f} ms per prompt (term lists + profanity model, one prompt at a time)")
    if args.show_misses:
        for row in misses:
            print("MISS", row["category"], row["prompt"])
        for p, c, why in fps:
            print("FALSE POSITIVE", c, why, "|", p)


if __name__ == "__main__":
    main()
