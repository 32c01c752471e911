"""benchmarks/gpu_smoke.sh runs its CPU dry run: every part of the GPU check works end to end before a GPU is at
hand (the GPU figures themselves are in benchmarks/README.md, from a run on a machine with one)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_smoke_dry_run_reports_every_part(tmp_path):
    results = tmp_path / "smoke.json"
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(["bash", "benchmarks/gpu_smoke.sh", "--dry-run", "--json", str(results)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads(results.read_text())
    step = data["step"]
    assert set(step) == {"plain", "proxyless", "darts", "spos"}
    assert all(row["weight_step_s"] > 0 and row["peak_gib"] > 0 for row in step.values())
    assert step["plain"]["params"] < step["spos"]["params"] == step["darts"]["params"]  # the supernet holds every candidate
    assert step["proxyless"]["arch_step_s"] > 0 and step["spos"]["arch_step_s"] is None
    assert data["search"]["shipped"] in ("base", "derived") and len(data["search"]["history"]) == 3  # start + 2 epochs
    assert data["probe"]["batch"] == 2 and "no CUDA" in data["oom"]["note"]
    assert data["export"]["check_images"] == 4 and data["export"]["torchscript"]["ok"] and data["export"]["onnx"]["ok"]
    assert "| darts |" in done.stdout and "**export**" in done.stdout


def test_gpu_smoke_refuses_to_run_without_cuda_unless_dry_run():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    done = subprocess.run(["bash", "benchmarks/gpu_smoke.sh", "--parts", "step"], cwd=ROOT, env={**os.environ, "PYTHON": sys.executable},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "no CUDA device here" in done.stderr
