"""The stage runs the search on several processes (NAS_NPROC, or nproc in neck_nas.yaml), on CPU with gloo:
the job completes with one set of outputs and rank 0's progress only, /stop ends every rank, and a failing
rank fails the job with its reason. Plus the setting's precedence (neck_nas.yaml over NAS_NPROC)."""
from __future__ import annotations

import json
import time

import pytest
import torch

from autonn_nas.service.job_inputs import load_job_inputs
from autonn_nas.service.job_launch import check_nproc
from autonn_nas.service.paths import ProjectPaths
from autonn_nas.service.state import group_alive
from test_service_support import PROJECT, TINY_SETTINGS, USER, Stack, copy_demo_dataset, fake_dataset, needs_runner, write_project

JOB_TIMEOUT = 300  # seconds: two ranks on a shared 2-core CPU
SPOS = {**TINY_SETTINGS, "strategy": "spos", "evaluations": 4}  # batch 4: 2 images per rank


def _run_dir(stack: Stack):
    return stack.shared / "common" / USER / PROJECT / "neck_nas"


@needs_runner
@pytest.mark.slow
def test_two_processes_from_nas_nproc_complete_with_one_voice(tmp_path):
    stack = Stack(tmp_path, extra_env={"NAS_NPROC": "2"})
    try:
        copy_demo_dataset(stack.shared)
        project_dir = write_project(stack.shared, settings=SPOS)
        assert stack.call("start") == (200, "started")
        seen = stack.wait_for(("completed", "failed"), JOB_TIMEOUT)
        assert seen[-1] == "completed", stack.job_log()
        assert stack.wait_report(30)["status"] == "completed"

        # rank 0 alone reported: one nas_start, one epoch_summary per epoch (and the CPU default's one retrain epoch,
        # which rank 0 runs alone), one evolution_search per generation
        updates = [r["update_id"] for r in stack.records("status_update")]
        assert updates[0] == "nas_start" and updates[-1] == "nas_end", updates
        assert updates.count("nas_start") == updates.count("nas_end") == updates.count("retrain_start") == 1
        assert updates.count("epoch_summary") == TINY_SETTINGS["epochs"] + 1
        detail = stack.status()
        assert detail["progress"] == 1.0 and detail["epoch"] == detail["epochs"] == TINY_SETTINGS["epochs"]
        assert (project_dir / "neck_nas_model.yaml").is_file() and (project_dir / "bestmodel.pt").is_file()

        run_dir = _run_dir(stack)
        report = json.loads((run_dir / "report.json").read_text())
        assert report["settings"]["nproc"] == 2 and report["spos"]["evaluated"] == 4
        search_log = (run_dir / "search.log").read_text()
        assert search_log.count("search on cpu") == 1  # one run, logged by rank 0
        assert "4 architectures scored" in search_log and "by 2 process(es)" in search_log
        assert stack.job_log().count("search finished") == 1
    finally:
        stack.close()


@needs_runner
@pytest.mark.slow
def test_stop_ends_every_rank_and_a_failing_rank_fails_the_job(tmp_path):
    stack = Stack(tmp_path)
    try:
        copy_demo_dataset(stack.shared)
        write_project(stack.shared, settings={**TINY_SETTINGS, "epochs": 50, "nproc": 2})
        assert stack.call("start") == (200, "started")
        deadline = time.monotonic() + JOB_TIMEOUT
        while "epoch_summary" not in [r["update_id"] for r in stack.records("status_update")]:
            assert time.monotonic() < deadline and stack.status()["status"] in ("started", "running"), stack.job_log()
            time.sleep(0.2)
        pgid = json.loads((_run_dir(stack) / "status.json").read_text())["pgid"]
        assert stack.call("stop") == (200, "stopped")
        deadline = time.monotonic() + 30  # /stop answers within a second; the kill may finish in the background
        while group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not group_alive(pgid)  # the job, the launcher and both ranks were one process group
        assert stack.call("status_request") == (200, "stopped")

        # the global batch 5 cannot be split between 2 ranks: every rank raises; the job fails with that reason
        write_project(stack.shared, settings={**TINY_SETTINGS, "batch_size": 5, "nproc": 2})
        assert stack.call("start") == (200, "started")
        assert stack.wait_for(("completed", "failed"), JOB_TIMEOUT)[-1] == "failed", stack.job_log()
        assert stack.wait_report(30)["status"] == "failed"
        error = stack.status()["error"]
        assert error.startswith("search rank ") and "of 2 failed: ValueError: batch 5" in error, error
        assert "not divisible by the 2 processes" in error and "Traceback" not in error, error
    finally:
        stack.close()


def test_neck_nas_yaml_nproc_overrides_the_stage_default(tmp_path):
    fake_dataset(tmp_path)
    paths = ProjectPaths.of(tmp_path, USER, PROJECT)
    write_project(tmp_path, settings={"epochs": 1})
    assert load_job_inputs(paths, nproc=3).settings.nproc == 3  # NAS_NPROC when the project says nothing
    write_project(tmp_path, settings={"epochs": 1, "nproc": 1})
    assert load_job_inputs(paths, nproc=3).settings.nproc == 1
    write_project(tmp_path, settings={"nproc": 0})
    with pytest.raises(ValueError, match="nproc must be a positive integer"):
        load_job_inputs(paths)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_more_ranks_than_gpus_is_refused_before_the_search():
    from autonn_nas.search.settings import SearchSettings

    too_many = torch.cuda.device_count() + 1
    with pytest.raises(ValueError, match=f"nproc {too_many}: this machine has only"):
        check_nproc(SearchSettings(device="cuda", nproc=too_many))
    check_nproc(SearchSettings(device="cpu", nproc=too_many))  # gloo on CPU: any number of ranks
