"""The stage's HTTP contract over loopback with real processes, for everything that ends before a search."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from autonn_nas.service.local_stack import http_get
from autonn_nas.service.queue import queue_turn
from autonn_nas.service.state import process_start_ticks
from test_service_support import USER, fake_dataset, write_project

ENDPOINTS = ("start", "stop", "resume", "status_request")
BAD_IDS = ["../../etc", "..", ".", "a/b", "a b", "", "x" * 200, "%2e%2e", "user;rm", "..hidden", "a\\b",
           "-h", "--resume", "_x", ".hidden", "@x"]  # an id begins with a letter or digit
CLASSIFICATION = "task_type : classification\ndataset : coco128_mini\n"
JOB_TIMEOUT = 120  # seconds for a job process to start (it imports torch) on a shared 2-core CPU


def _tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_healthz_and_ready(shared_stack):
    assert http_get(f"{shared_stack.stage_url}/healthz") == (200, "ok")
    assert shared_stack.call("status_request", project="never_started") == (200, "ready")
    detail = shared_stack.status(project="never_started")
    assert detail["status"] == "ready" and "does not exist" in detail["error"]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_invalid_ids_refused_and_nothing_touched(shared_stack, bad):
    before = _tree(shared_stack.root)
    for endpoint in ENDPOINTS:
        assert shared_stack.call(endpoint, user=bad) == (400, "failed"), endpoint
        assert shared_stack.call(endpoint, project=bad) == (400, "failed"), endpoint
    assert shared_stack.status(user=bad)["status"] == "failed"
    assert _tree(shared_stack.root) == before


def test_path_traversal_leaves_no_trace(shared_stack):
    write_project(shared_stack.shared, project="traversal")
    fake_dataset(shared_stack.shared)
    before = _tree(shared_stack.root)
    assert shared_stack.call("start", user="../..", project="etc") == (400, "failed")
    assert shared_stack.call("start", user=USER, project="../../../x") == (400, "failed")
    assert _tree(shared_stack.root) == before


def test_userid_alias_and_reason_in_status_and_log(shared_stack):
    write_project(shared_stack.shared, project="alias", info=CLASSIFICATION)
    fake_dataset(shared_stack.shared)
    assert shared_stack.call("start", project="alias", id_key="userid") == (400, "failed")
    assert shared_stack.call("status_request", project="alias", id_key="userid") == (200, "failed")
    detail = shared_stack.status(project="alias")
    assert detail["status"] == "failed" and "project_info.yaml" in detail["error"] and "classification" in detail["error"]
    assert "classification" in shared_stack.job_log(project="alias")


@pytest.mark.parametrize(
    "case, info, settings, with_dataset, expect",
    [
        ("no_project_info", None, None, True, "project_info.yaml: not found"),
        ("malformed", "task_type : detection\nthis line has no colon\n", None, True, "line 2"),
        ("classification", CLASSIFICATION, None, True, "only 'detection'"),
        ("no_task_type", "dataset : coco128_mini\n", None, True, "task_type is missing"),
        ("missing_dataset", "task_type : detection\ndataset : nosuchdata\n", None, False, "nosuchdata"),
        ("no_dataset_key", "task_type : detection\n#dataset : coco128_mini\n", None, True, "dataset is missing"),
        ("bad_settings_key", None, {"epochs": 1, "epoch_count": 3}, True, "neck_nas.yaml: unknown setting(s) epoch_count"),
        ("bad_settings_value", None, {"img_size": 100}, True, "multiple of 32"),
        ("settings_sets_data", None, {"data": "/etc/x.yaml"}, True, "data cannot be set here"),
        ("cfg_outside_shared", None, {"cfg": "../../../../etc/passwd"}, True, "outside the shared volume"),
        ("teacher_outside_shared", None, {"teacher": "../../../../etc/passwd"}, True, "outside the shared volume"),
        ("settings_sets_latency_cache", None, {"latency_cache": "/tmp/cache.json"}, True, "latency_cache cannot be set here"),
        ("bad_lightweight_level", "task_type : detection\ndataset : coco128_mini\nlightweight_level : 42\n", None, True, "lightweight_level"),
    ],
)
def test_bad_inputs_fail_with_a_reason(shared_stack, case, info, settings, with_dataset, expect):
    project_dir = write_project(shared_stack.shared, project=case, info=info, settings=settings,
                                dataset="coco128_mini" if with_dataset else "nosuchdata")
    if case == "no_project_info":
        (project_dir / "project_info.yaml").unlink()
    if with_dataset:
        fake_dataset(shared_stack.shared)
    assert shared_stack.call("start", project=case) == (400, "failed")
    detail = shared_stack.status(project=case)
    assert detail["status"] == "failed", detail
    assert expect in detail["error"], detail["error"]
    assert expect in shared_stack.job_log(project=case)
    assert not (project_dir / "neck_nas_model.yaml").exists()
    # a refused /start is answered `failed` at once; it is not also reported as a finished job
    assert [r for r in shared_stack.records("status_report") if r["project_id"] == case] == []


def test_start_of_missing_project_creates_nothing(shared_stack):
    assert shared_stack.call("start", project="nothere") == (400, "failed")
    assert not (shared_stack.shared / "common" / USER / "nothere").exists()


def test_stop_and_resume_without_a_job(shared_stack):
    assert shared_stack.call("stop", project="idle") == (400, "failed")  # unknown project
    write_project(shared_stack.shared, project="idle", info=CLASSIFICATION)
    fake_dataset(shared_stack.shared)
    assert shared_stack.call("resume", project="idle") == (400, "failed")  # never started: nothing to resume
    shared_stack.call("start", project="idle")
    assert shared_stack.call("stop", project="idle") == (200, "stopped")  # nothing runs; the failed state stays
    assert shared_stack.call("status_request", project="idle") == (200, "failed")


def _listed_dataset(shared, name: str = "listed_only") -> str:
    """A dataset the job's own checks accept (an image file listed in each split) and that no test searches."""
    folder = shared / "datasets" / name
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "images" / "a.jpg").write_bytes(b"")
    (folder / "dataset.yaml").write_text("train: images\nval: images\nnc: 1\nnames: [thing]\n")
    return name


def test_resume_refused_after_a_stop_while_queued(shared_stack):
    write_project(shared_stack.shared, project="queued", dataset=_listed_dataset(shared_stack.shared))
    # holding the machine's queue lock keeps the job waiting for its turn, before any search checkpoint exists
    with queue_turn(shared_stack.root / "queue.lock"):
        assert shared_stack.call("start", project="queued") == (200, "started")
        shared_stack.wait_phase("queued", project="queued", timeout=JOB_TIMEOUT)
        assert shared_stack.call("stop", project="queued") == (200, "stopped")
        assert shared_stack.call("resume", project="queued") == (400, "failed")
    assert shared_stack.call("status_request", project="queued") == (200, "stopped")
    assert "nothing to resume" in shared_stack.job_log(project="queued")


def test_fresh_start_forgets_an_older_checkpoint(shared_stack):
    project_dir = write_project(shared_stack.shared, project="stale_checkpoint")
    fake_dataset(shared_stack.shared)  # dataset.yaml exists (all /start checks); its images do not: the job fails on its inputs
    run_dir = project_dir / "neck_nas"
    run_dir.mkdir(parents=True)
    (run_dir / "last.pt").write_bytes(b"an older job's checkpoint")
    (run_dir / "status.json").write_text(json.dumps({"status": "stopped", "job_id": "older"}))
    assert shared_stack.call("start", project="stale_checkpoint") == (200, "started")
    assert not (run_dir / "last.pt").exists()
    assert shared_stack.wait_for(("completed", "failed"), JOB_TIMEOUT, project="stale_checkpoint")[-1] == "failed"
    assert shared_stack.call("resume", project="stale_checkpoint") == (400, "failed")
    assert shared_stack.call("status_request", project="stale_checkpoint") == (200, "failed")


def test_unknown_route_and_wrong_method_are_client_errors(shared_stack):
    stage_log = shared_stack.root / "stage.log"
    logged_before = stage_log.stat().st_size
    assert http_get(f"{shared_stack.stage_url}/nope?user_id={USER}&project_id=p") == (404, "failed")
    post = urllib.request.Request(f"{shared_stack.stage_url}/start?user_id={USER}&project_id=p", data=b"", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(post, timeout=10)
    assert refused.value.code == 405 and refused.value.read().decode() == "failed"
    assert "GET" in refused.value.headers["Allow"]
    post = urllib.request.Request(f"{shared_stack.stage_url}/status?user_id={USER}&project_id=p", data=b"", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(post, timeout=10)
    assert refused.value.code == 405 and json.loads(refused.value.read())["status"] == "failed"
    with open(stage_log, "rb") as log:
        log.seek(logged_before)
        assert b"Traceback" not in log.read()


# A stand-in for an unrelated process: exits with code 7 on a real-time signal. Pending standard signals (SIGTERM,
# SIGKILL) are delivered before real-time ones, so its exit code says whether anyone signalled it before we did.
_STRANGER = ("import pathlib, signal, sys, time; signal.signal(signal.SIGRTMIN, lambda *_: sys.exit(7)); "
             "pathlib.Path(sys.argv[1]).touch(); time.sleep(120)")


@pytest.mark.parametrize("method", ["HEAD", "OPTIONS", "PUT", "DELETE"])
def test_only_get_starts_anything(shared_stack, method):
    project_dir = write_project(shared_stack.shared, project=f"method_{method}")
    fake_dataset(shared_stack.shared)
    for endpoint in ENDPOINTS:
        request = urllib.request.Request(f"{shared_stack.stage_url}/{endpoint}?user_id={USER}&project_id=method_{method}",
                                         method=method)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 405 and refused.value.headers["Allow"] == "GET", endpoint
    assert not (project_dir / "neck_nas").exists()  # issue 18: HEAD /start started a job
    assert shared_stack.call("status_request", project=f"method_{method}") == (200, "ready")


def test_stop_leaves_a_reused_process_group_alone(shared_stack, tmp_path):
    """After a restart the recorded job pid and process group can be another process's: /stop must not signal it."""
    run_dir = write_project(shared_stack.shared, project="ghost") / "neck_nas"
    run_dir.mkdir(parents=True)
    ready = tmp_path / "stranger_ready"
    stranger = subprocess.Popen([sys.executable, "-c", _STRANGER, str(ready)], start_new_session=True)  # holds the recorded pid and group id
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert time.monotonic() < deadline and stranger.poll() is None, "the stand-in process did not start"
            time.sleep(0.05)
        # the recorded job started before this process did: its pid was reused
        (run_dir / "status.json").write_text(json.dumps({
            "status": "running", "job_id": "gone", "pid": stranger.pid, "pgid": stranger.pid,
            "pid_start": process_start_ticks(stranger.pid) - 1}))
        assert shared_stack.call("stop", project="ghost") == (200, "stopped")
        # a signal /stop sent is pending by now (kill() returned before the answer) and goes before ours
        stranger.send_signal(signal.SIGRTMIN)
        assert stranger.wait(30) == 7, "the stranger's process group was signalled"
        detail = shared_stack.status(project="ghost")
        assert detail["status"] == "failed" and "no longer running" in detail["error"], detail
    finally:
        stranger.kill()
        stranger.wait()
