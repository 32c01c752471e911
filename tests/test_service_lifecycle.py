"""End to end over loopback with the real search on the embedded demo project (tiny settings, seconds each):
start -> running -> completed with every output checked, duplicate start, stop mid-search, a killed job
resumed, a server restart mid-job, and a PM that is down."""
from __future__ import annotations

import json
import os
import signal
import time

import pytest
import torch
import yaml

from autonn_nas.models.yolo import build_model, load_cfg
from autonn_nas.service.state import group_alive
from test_service_support import PROJECT, TINY_SETTINGS, USER, Stack, copy_demo_dataset, needs_runner, write_project

pytestmark = [needs_runner, pytest.mark.slow]
JOB_TIMEOUT = 300  # seconds: generous for a shared 2-core CPU; a tiny search takes seconds


def _project(stack: Stack, **settings) -> "os.PathLike":
    copy_demo_dataset(stack.shared)
    return write_project(stack.shared, settings={**TINY_SETTINGS, **settings})


def _state(stack: Stack) -> dict:
    return json.loads((stack.shared / "common" / USER / PROJECT / "neck_nas" / "status.json").read_text())


def _wait_epoch(stack: Stack, timeout: float = JOB_TIMEOUT) -> dict:
    """Wait until the search reported at least one epoch (so it has a checkpoint to resume from)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        detail = stack.status()
        if detail.get("epoch") or detail.get("status") in ("completed", "failed"):
            return detail
        time.sleep(0.2)
    raise AssertionError(f"no epoch within {timeout}s; job log:\n{stack.job_log()}")


def _wait_group_gone(stack: Stack, timeout: float) -> None:
    pgid, deadline = _state(stack)["pgid"], time.monotonic() + timeout
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not group_alive(pgid), f"the job's processes are still there {timeout}s after it completed"


def _check_outputs(project_dir) -> None:
    model_yaml, weights, info_file = (project_dir / n for n in ("neck_nas_model.yaml", "bestmodel.pt", "neural_net_info.yaml"))
    assert model_yaml.is_file() and weights.is_file() and info_file.is_file()
    model = build_model(model_yaml)
    info = yaml.safe_load(info_file.read_text())
    size = info["input_tensor_shape"][-1]
    assert info["input_tensor_shape"] == [1, 3, size, size] and size == TINY_SETTINGS["img_size"]
    assert info["nc"] == model.detect.nc == len(info["names"]) == 80 and info["names"][0] == "person"
    assert info["stride"] == [int(s) for s in model.detect.stride.tolist()] == [8, 16, 32]
    assert info["anchors"] == load_cfg(model_yaml)["anchors"]
    assert info["output_number"] == 3
    assert info["output_size"] == [[1, model.detect.na, size // s, size // s, model.detect.nc + 5] for s in (8, 16, 32)]
    if not torch.cuda.is_available():  # the demo's acc is cuda: fp16 asked for, fp32 delivered, and said why
        assert info["input_data_type"] == "fp32" and "no CUDA device" in info["precision_note"]
    assert info["weight_file"] == ["bestmodel.pt", "bestmodel.torchscript"] and info["config_file"] == "neck_nas_model.yaml" and info["need_nms"] is True
    model.eval()
    with torch.no_grad():
        pred, raw = model(torch.zeros(info["input_tensor_shape"]))
    assert [list(r.shape) for r in raw] == info["output_size"]
    checkpoint = torch.load(weights, map_location="cpu", weights_only=False)
    state_dict = checkpoint.get("state_dict", checkpoint.get("model", checkpoint)) if isinstance(checkpoint, dict) else checkpoint
    if not isinstance(state_dict, dict):
        state_dict = state_dict.state_dict()
    model.load_state_dict(state_dict)


def test_happy_path(tmp_path):
    stack = Stack(tmp_path)
    try:
        project_dir = _project(stack)
        assert stack.call("start") == (200, "started")
        seen = stack.wait_for(("completed", "failed"), JOB_TIMEOUT)
        assert seen[-1] == "completed", stack.job_log()
        assert seen[0] in ("started", "running") and set(seen) <= {"started", "running", "completed"}
        report = stack.wait_report(30)
        assert (report["status"], report["container_id"], report["user_id"], report["project_id"]) == ("completed", "neck_nas", USER, PROJECT)
        updates = [r["update_id"] for r in stack.records("status_update")]
        assert updates[0] == "nas_start" and "epoch_summary" in updates and updates[-1] == "nas_end"
        detail = stack.status()
        assert detail["progress"] == 1.0 and detail["architecture"] and set(detail["outputs"]) == {
            # the demo project's engine is pytorch: a TorchScript export, plus the model code to rebuild it
            "neck_nas_model.yaml", "bestmodel.pt", "neural_net_info.yaml", "bestmodel.torchscript", "neck_nas_models"}
        # the status says what shipped and why: the base unless the searched architecture beat it beyond noise
        assert detail["decision"]["shipped"] in ("derived", "base") and detail["decision"]["reason"]
        shipped = detail["decision"]["searched"] if detail["decision"]["shipped"] == "derived" else {k: "k3_mish" for k in detail["decision"]["searched"]}
        assert detail["architecture"] == " ".join(f"{k}={v}" for k, v in shipped.items())
        _check_outputs(project_dir)
        _wait_group_gone(stack, 30)
    finally:
        stack.close()


def test_duplicate_start_runs_one_job(tmp_path):
    stack = Stack(tmp_path)
    try:
        _project(stack, epochs=50)
        assert stack.call("start") == (200, "started")
        job_id = _state(stack)["job_id"]
        assert [stack.call("start")[1] for _ in range(3)] == ["started"] * 3
        stack.wait_for(("running",), JOB_TIMEOUT)
        assert stack.call("start") == (200, "started")
        assert _state(stack)["job_id"] == job_id
        assert stack.job_log().count("starting job") == 1
        assert stack.call("stop") == (200, "stopped")
    finally:
        stack.close()


def test_stop_mid_search(tmp_path):
    stack = Stack(tmp_path)
    try:
        project_dir = _project(stack, epochs=50)
        assert stack.call("start") == (200, "started")
        stack.wait_for(("running",), JOB_TIMEOUT)
        stack.wait_detail(lambda detail: detail.get("last_event"), "the search's first event", JOB_TIMEOUT)  # mid-search
        pgid = _state(stack)["pgid"]
        asked = time.monotonic()
        assert stack.call("stop") == (200, "stopped")
        # within TANGO's PM timeout (5 s): the server answers after at most 1 s, the rest runs in the background
        assert time.monotonic() - asked < 4.0
        deadline = time.monotonic() + 30
        while group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not group_alive(pgid)
        assert stack.call("status_request") == (200, "stopped")
        assert not (project_dir / "neck_nas_model.yaml").exists() and not (project_dir / "bestmodel.pt").exists()
        # every process of the job is gone (checked above), so nothing can overwrite the state any more
        assert stack.call("status_request") == (200, "stopped")
        assert [r for r in stack.records("status_report") if r["status"] == "completed"] == []
        assert stack.call("stop") == (200, "stopped")  # idempotent
    finally:
        stack.close()


def test_killed_job_is_reported_failed_and_resumes(tmp_path):
    stack = Stack(tmp_path)
    try:
        project_dir = _project(stack, epochs=2)
        assert stack.call("start") == (200, "started")
        detail = _wait_epoch(stack)
        assert detail["status"] == "running", (detail, stack.job_log())
        os.killpg(_state(stack)["pgid"], signal.SIGKILL)  # as the OOM killer would
        assert stack.wait_report(30)["status"] == "failed"
        detail = stack.status()
        assert detail["status"] == "failed" and "signal 9" in detail["error"]
        assert not (project_dir / "neck_nas_model.yaml").exists()
        assert stack.call("resume") == (200, "started")
        assert stack.wait_for(("completed", "failed"), JOB_TIMEOUT)[-1] == "completed", stack.job_log()
        assert [r["status"] for r in stack.wait_reports(2, 30)] == ["failed", "completed"]
        _check_outputs(project_dir)
    finally:
        stack.close()


def test_server_restart_mid_job(tmp_path):
    stack = Stack(tmp_path)
    try:
        project_dir = _project(stack, epochs=2)
        assert stack.call("start") == (200, "started")
        stack.wait_for(("running",), JOB_TIMEOUT)
        stack.restart_stage(signal.SIGKILL)
        assert stack.call("status_request")[1] in ("running", "completed")
        assert stack.wait_for(("completed", "failed"), JOB_TIMEOUT)[-1] == "completed", stack.job_log()
        assert [r["status"] for r in stack.wait_reports(1, 30)] == ["completed"]
        _check_outputs(project_dir)
    finally:
        stack.close()


def test_pm_down_job_still_completes(tmp_path):
    stack = Stack(tmp_path, pm_up=False)  # PROJECT_MANAGER_URL points at a port nobody listens on
    try:
        project_dir = _project(stack)
        assert stack.call("start") == (200, "started")
        started = time.monotonic()
        assert stack.wait_for(("completed", "failed"), JOB_TIMEOUT)[-1] == "completed", stack.job_log()
        _check_outputs(project_dir)
        _wait_group_gone(stack, 30)  # the job gives up on the PM within its bounded retries
        assert time.monotonic() - started < JOB_TIMEOUT
        assert "the completed report of demo_user/demo_project is kept in" in stack.job_log()
        assert stack.status()["report_pending"]["status"] == "completed"
    finally:
        stack.close()


def test_broken_dataset_fails_in_the_job_with_the_reason(tmp_path):
    stack = Stack(tmp_path)
    try:
        dataset = copy_demo_dataset(stack.shared)
        (dataset / "dataset.yaml").write_text("train: images/no_such_folder\nval: images/val2017\nnc: 80\n")
        write_project(stack.shared, settings=TINY_SETTINGS)
        assert stack.call("start") == (200, "started")  # /start checks only that dataset.yaml exists
        assert stack.wait_for(("completed", "failed"), JOB_TIMEOUT)[-1] == "failed"
        assert stack.wait_report(30)["status"] == "failed"
        error = stack.status()["error"]
        assert "dataset.yaml" in error and not error.startswith("internal error"), error
        assert error in stack.job_log()
    finally:
        stack.close()
