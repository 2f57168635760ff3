"""The CPU smoke run of benchmarks/open_models_gpu.py (tiny dims): it builds, wraps in kino and times."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path


def test_open_models_gpu_smoke(capsys):
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "open_models_gpu.py"
    spec = importlib.util.spec_from_file_location("open_models_gpu", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rows = bench.main(["--tiny", "--device", "cpu", "--steps", "2", "--only", "wan-1.3b"])
    assert [r["setting"] for r in rows] == ["plain", "first block cache 0.1"]  # offload and compile need a GPU
    for r in rows:
        assert r["frames"] == 5 and r["steps"] == 2 and r["s_per_step"] > 0 and r["e2e"] >= r["s_per_step"]
        assert r["e2e_default"] > r["e2e"] and math.isnan(r["peak_gb"])
    table = capsys.readouterr().out
    assert table.count("| Wan 2.1 T2V") == 2 and "CPU, torch" in table
    # the real presets are the released architectures' shapes
    assert bench.PRESETS["wan-1.3b"][1]["num_layers"] == 30 and bench.PRESETS["wan-1.3b"][1]["ffn_dim"] == 8960
