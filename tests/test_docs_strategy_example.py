"""docs/strategies.md's example, done as a reader would: a copy of the package gets the example's file and
the two registration lines the page gives, then `autonn-nas search --strategy random` runs end to end.
A page whose example no longer runs (the base class changed, a name moved) fails here."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "strategies.md"
DATA = ROOT / "shared_volume" / "datasets" / "coco128_mini" / "dataset.yaml"


def _page_parts() -> tuple[str, str, str]:
    """(the example module's code, the settings' STRATEGIES line, the strategies package's import line)."""
    text = PAGE.read_text()
    example = text.split("## Example", 1)[1]
    code = re.search(r"```python\n(.*?)```", example, re.S).group(1)
    tuple_line = re.search(r"`(STRATEGIES = \([^`]*\))`", example).group(1)
    import_line = re.search(r"`(from autonn_nas\.search\.strategies import [^`]*)`", example).group(1)
    return code, tuple_line, import_line


def _replace_line(path: Path, starts_with: str, new_line: str) -> None:
    lines = path.read_text().splitlines()
    matches = [i for i, line in enumerate(lines) if line.startswith(starts_with)]
    assert len(matches) == 1, f"{path.name}: the page's registration expects one line starting {starts_with!r}"
    lines[matches[0]] = new_line + "  # noqa: F401" * ("import" in new_line)
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.slow
def test_the_pages_random_search_runs_as_a_fourth_strategy(tmp_path):
    code, tuple_line, import_line = _page_parts()
    package = tmp_path / "autonn_nas"
    shutil.copytree(ROOT / "autonn_nas", package, ignore=shutil.ignore_patterns("__pycache__"))
    (package / "search" / "strategies" / "random_search.py").write_text(code)  # the one new file
    _replace_line(package / "search" / "settings.py", "STRATEGIES = (", tuple_line)  # its registration
    _replace_line(package / "search" / "strategies" / "__init__.py", "from autonn_nas.search.strategies import", import_line)

    out = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(tmp_path), OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "autonn_nas", "search", "--strategy", "random", "--data", str(DATA), "--out", str(out),
               "--epochs", "1", "--img", "64", "--batch", "8", "--width", "0.125", "--depth", "0.33", "--workers", "0",
               "--device", "cpu", "--evaluations", "3", "--retrain-epochs", "0", "--no-progress"]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    report = json.loads((out / "report.json").read_text())
    assert report["settings"]["strategy"] == "random"
    searched = json.loads((out / "arch.json").read_text())
    assert set(searched["searched"]) == {"m_16", "m_21", "m_25", "m_29"}, searched
    assert "3 architectures" in (out / "search.log").read_text()  # the scorer counted what derive scored
