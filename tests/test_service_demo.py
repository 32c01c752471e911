"""`autonn-nas demo` (`make demo`, the README's main job) end to end, shortened: stub + server + real search, exit 0."""
from __future__ import annotations

import subprocess
import sys

import pytest

from autonn_nas.service.local_stack import REPO_ROOT
from test_service_support import TINY_SETTINGS, copy_demo_dataset, needs_runner


@needs_runner
@pytest.mark.slow
def test_demo_completes(tmp_path):
    copy_demo_dataset(tmp_path / "probe")  # skips while the embedded dataset is missing
    shared = tmp_path / "demo_shared"
    result = subprocess.run(
        [sys.executable, "-m", "autonn_nas", "demo", "--shared-dir", str(shared), "--poll", "0.5",
         *[f"--set={key}={value}" for key, value in TINY_SETTINGS.items()]],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    model_yaml = shared / "common" / "demo_user" / "demo_project" / "neck_nas_model.yaml"
    assert f"derived model YAML: {model_yaml}" in result.stdout
    assert model_yaml.is_file()
    assert "PM stub received status_report: completed" in result.stdout
    # the CPU default retrain ran: its val figures next to the inherited ones
    assert "after 1 retrain epochs (inherited weights: " in result.stdout and "base architecture, inherited: " in result.stdout
    assert (shared / "pm_records.jsonl").read_text().count('"status_report"') == 1
    assert not (REPO_ROOT / "shared_volume" / "common" / "demo_user" / "demo_project" / "neck_nas").exists()  # repo stays clean
