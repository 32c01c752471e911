"""benchmarks/peer_nni.py (NNI side by side) needs nni, which only its own environment has (make peer-venv): anywhere
else it says so in one line and exits 0, without importing torch or nni."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "peer_nni.py"


@pytest.mark.skipif(importlib.util.find_spec("nni") is not None, reason="nni is installed here: the script would run the benchmark")
def test_skips_without_nni() -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--part", "cost"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("peer_nni: skipped, nni is not installed"), done.stdout
    assert "make peer-venv" in lines[0]


def test_names_a_missing_lightning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT))  # benchmarks/ lives beside the package, not in it
    from benchmarks import peer_nni

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "nni" else None if name == "pytorch_lightning" else real(name, *a))
    assert "pytorch-lightning is not installed" in peer_nni.missing_peer()
