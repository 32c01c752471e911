"""The stage's retrain over loopback with the real search on the embedded demo project (tiny settings): the
hand-off is the fine-tuned model, reported next to the inherited one, the retrain is a phase of /status and of
the PM's epoch summaries, and a job stopped during the retrain and resumed ends with the same weights as one
that ran straight through (one CPU thread: the Stack sets OMP_NUM_THREADS=1)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

from autonn_nas.service.state import group_alive
from test_service_support import TINY_SETTINGS, USER, Stack, copy_demo_dataset, needs_runner, write_project

pytestmark = [needs_runner, pytest.mark.slow]
JOB_TIMEOUT = 300  # seconds: generous for a shared 2-core CPU
RETRAIN = {**TINY_SETTINGS, "retrain_epochs": 4}  # enough epochs to stop the job in the middle of them


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def _complete(stack: Stack, project: str) -> dict:
    assert stack.wait_for(("completed", "failed"), JOB_TIMEOUT, USER, project)[-1] == "completed", stack.job_log(USER, project)
    return stack.status(USER, project)


def _wait_retraining(stack: Stack, project: str) -> dict:
    """/status once the retrain reported an epoch (its checkpoint is written by then)."""
    deadline = time.monotonic() + JOB_TIMEOUT
    while time.monotonic() < deadline:
        detail = stack.status(USER, project)
        if detail.get("phase") == "retraining" and (detail.get("epoch") or 0) >= 1 or detail.get("status") in ("completed", "failed"):
            return detail
        time.sleep(0.05)
    raise AssertionError(f"no retrain epoch within {JOB_TIMEOUT}s; job log:\n{stack.job_log(USER, project)}")


def test_the_stage_hands_off_the_retrained_model_and_a_stop_during_the_retrain_resumes_it(tmp_path):
    stack = Stack(tmp_path)
    try:
        copy_demo_dataset(stack.shared)
        straight = write_project(stack.shared, project="straight", settings=RETRAIN)
        assert stack.call("start", USER, "straight") == (200, "started")
        detail = _complete(stack, "straight")
        metrics, report = detail["metrics"], json.loads(Path(detail["report"]).read_text())
        assert metrics["retrain_epochs"] == 4 and report["retrain"]["epochs"] == 4
        assert (metrics["map50"], metrics["map"]) == (report["retrain"]["val"]["map50"], report["retrain"]["val"]["map"])
        assert (metrics["inherited_map50"], metrics["inherited_map"]) == (report["derived"]["val"]["map50"], report["derived"]["val"]["map"])
        assert (metrics["base_map50"], metrics["base_map"]) == (report["base"]["val"]["map50"], report["base"]["val"]["map"])
        handed_off = _weights(straight / "bestmodel.pt")
        retrained = _weights(straight / "neck_nas" / "retrain" / "last.pt")
        assert handed_off.keys() == retrained.keys() and all(torch.equal(handed_off[k], retrained[k]) for k in handed_off)
        updates = [r for r in stack.records("status_update") if r["project_id"] == "straight"]
        ids = [r["update_id"] for r in updates]
        assert ids[0] == "nas_start" and ids[-1] == "nas_end" and ids.index("retrain_start") > ids.index("epoch_summary")
        rows = [json.loads(r["update_content"]) for r in updates if r["update_id"] == "epoch_summary"]
        # TANGO's chart counts on through the retrain: 1 supernet epoch, then 4 retrain epochs of 5 in all
        assert [(r["phase"], r["current_epoch"], r["total_epoch"]) for r in rows] == [
            ("supernet_training", 1, 5), *[("retraining", n, 5) for n in range(2, 6)]]
        assert rows[-1]["val_acc_map50"] == metrics["map50"] and rows[-1]["val_acc_map"] == metrics["map"]

        stopped = write_project(stack.shared, project="stopped", settings=RETRAIN)
        assert stack.call("start", USER, "stopped") == (200, "started")
        detail = _wait_retraining(stack, "stopped")
        assert (detail["status"], detail["phase"], detail["epochs"]) == ("running", "retraining", 4), detail
        pgid = json.loads((stopped / "neck_nas" / "status.json").read_text())["pgid"]
        assert stack.call("stop", USER, "stopped") == (200, "stopped")
        deadline = time.monotonic() + 60
        while group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
        epoch = torch.load(stopped / "neck_nas" / "retrain" / "last.pt", map_location="cpu", weights_only=True)["epoch"]
        assert epoch < 3, f"the job was not stopped during its retrain (it had finished retrain epoch {epoch + 1} of 4)"
        assert not (stopped / "bestmodel.pt").exists()
        assert stack.call("resume", USER, "stopped") == (200, "started")
        _complete(stack, "stopped")
        assert "resuming the retrain" in stack.job_log(USER, "stopped")
        resumed = _weights(stopped / "bestmodel.pt")
        assert resumed.keys() == handed_off.keys() and all(torch.equal(resumed[k], handed_off[k]) for k in handed_off)
    finally:
        stack.close()
