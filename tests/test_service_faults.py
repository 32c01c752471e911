"""Faults the real search should never produce, provoked with a stand-in search (see test_service_support)."""
from __future__ import annotations

import fcntl
import json
import os
import signal
import time

import pytest

from autonn_nas.service.state import group_alive
from test_service_support import PROJECT, Stack, copy_demo_dataset, fake_runner_env, write_project


@pytest.fixture
def fault_stack(tmp_path, request):
    stack = Stack(tmp_path, extra_env=fake_runner_env(tmp_path, request.param))
    write_project(stack.shared)
    copy_demo_dataset(stack.shared)
    try:
        yield stack
    finally:
        stack.close()


@pytest.mark.parametrize("fault_stack", ["crash"], indirect=True)
def test_unexpected_exception_is_reported_failed(fault_stack):
    assert fault_stack.call("start") == (200, "started")
    report = fault_stack.wait_report(60)
    assert report["status"] == "failed" and report["container_id"] == "neck_nas" and report["user_id"] == "demo_user"
    detail = fault_stack.status()
    assert detail["status"] == "failed" and "internal error: RuntimeError: fake search blew up" in detail["error"]
    assert "Traceback" in fault_stack.job_log()
    updates = [r["update_id"] for r in fault_stack.records("status_update")]
    assert "nas_start" in updates


def _run_dir(stack):
    return stack.shared / "common" / "demo_user" / PROJECT / "neck_nas"


def _pgid(stack) -> int:
    return json.loads((_run_dir(stack) / "status.json").read_text())["pgid"]


def _wait_checkpoint(stack, timeout: float = 60) -> None:
    """Until the stand-in search wrote its first checkpoint (what /resume needs)."""
    deadline = time.monotonic() + timeout
    while not (_run_dir(stack) / "last.pt").is_file():
        assert time.monotonic() < deadline, f"no checkpoint within {timeout}s; job log:\n{stack.job_log()}"
        time.sleep(0.1)


@pytest.mark.parametrize("fault_stack", ["hang"], indirect=True)
def test_queue_second_project_waits_its_turn(fault_stack):
    write_project(fault_stack.shared, project="second")
    assert fault_stack.call("start") == (200, "started")
    fault_stack.wait_for(("running",), 60)
    assert fault_stack.call("start", project="second") == (200, "started")
    # the second job reaches its queue turn (it imports and checks its inputs first): wait for that, however long
    # a loaded machine takes; then, while the first job goes on (two more of its epochs), the second still waits
    assert fault_stack.wait_phase("queued", project="second")["status"] == "started"
    first_epoch = fault_stack.status()["epoch"] or 0
    deadline = time.monotonic() + 60
    while (fault_stack.status()["epoch"] or 0) < first_epoch + 2:
        assert time.monotonic() < deadline, f"the first job made no progress; job log:\n{fault_stack.job_log()}"
        time.sleep(0.1)
    detail = fault_stack.status(project="second")
    assert (detail["status"], detail["phase"]) == ("started", "queued"), detail
    assert fault_stack.call("stop") == (200, "stopped")
    fault_stack.wait_for(("running",), 60, project="second")  # the first one's end frees the machine
    assert fault_stack.call("stop", project="second") == (200, "stopped")


def _freeze_outside_the_state_lock(stack, pgid: int) -> None:
    """SIGSTOP the job at a moment it does not hold the state lock (it takes it for every progress event): /stop
    needs that lock before it signals, and a job frozen while holding it would block /stop for good."""
    for _ in range(100):
        os.kill(pgid, signal.SIGSTOP)
        with open(_run_dir(stack) / ".status.lock", "a+") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.kill(pgid, signal.SIGCONT)
                time.sleep(0.05)
                continue
            fcntl.flock(lock, fcntl.LOCK_UN)
            return
    raise AssertionError("the job held the state lock at every try")


@pytest.mark.parametrize("fault_stack", ["hang"], indirect=True)
def test_stop_ends_a_job_that_ignores_sigterm_too(fault_stack):
    assert fault_stack.call("start") == (200, "started")
    fault_stack.wait_for(("running",), 60)
    pgid = _pgid(fault_stack)
    job_id = json.loads((_run_dir(fault_stack) / "status.json").read_text())["job_id"]
    assert group_alive(pgid, job_id) and not group_alive(pgid, "another job")  # the job's processes carry its id
    _freeze_outside_the_state_lock(fault_stack, pgid)  # a stuck process: SIGTERM cannot run its handler, SIGKILL must follow
    started = time.monotonic()
    assert fault_stack.call("stop") == (200, "stopped")
    assert time.monotonic() - started < 4.0  # answered inside TANGO's PM timeout (5 s); SIGKILL follows in the background
    assert fault_stack.call("status_request") == (200, "stopped")
    while group_alive(pgid) and time.monotonic() - started < 20:
        time.sleep(0.1)
    assert not group_alive(pgid), "the frozen job was not killed after the grace period"
    assert fault_stack.call("status_request") == (200, "stopped")


@pytest.mark.parametrize("fault_stack", ["hang"], indirect=True)
def test_job_dead_while_server_down_is_found_at_restart(fault_stack):
    assert fault_stack.call("start") == (200, "started")
    fault_stack.wait_for(("running",), 60)
    _wait_checkpoint(fault_stack)
    pgid = _pgid(fault_stack)
    fault_stack.stage.stop(signal.SIGKILL)  # the server dies; the job, in its own session, lives on
    assert group_alive(pgid)
    os.killpg(pgid, signal.SIGKILL)  # then the job dies too, with nobody watching
    fault_stack.start_stage()
    report = fault_stack.wait_report(30)  # found by the new server's start-up scan, without any request
    assert report["status"] == "failed"
    detail = fault_stack.status()
    assert detail["status"] == "failed" and "no longer running" in detail["error"]
    assert fault_stack.call("resume") == (200, "started")
    fault_stack.wait_for(("running",), 60)
    assert fault_stack.call("stop") == (200, "stopped")


def test_stop_answers_within_a_second_when_the_job_froze_holding_the_state_lock(tmp_path):
    stack = Stack(tmp_path, extra_env=fake_runner_env(tmp_path, "hang", pause_at="locked"))
    try:
        write_project(stack.shared)
        copy_demo_dataset(stack.shared)
        assert stack.call("start") == (200, "started")
        deadline = time.monotonic() + 60
        while not (tmp_path / "paused").is_file():
            assert time.monotonic() < deadline, f"the job never took its pause; job log:\n{stack.job_log()}"
            time.sleep(0.1)
        pgid = _pgid(stack)
        os.kill(pgid, signal.SIGSTOP)  # frozen in the middle of a state write, holding the lock
        with open(_run_dir(stack) / ".status.lock", "a+") as lock:
            with pytest.raises(BlockingIOError):
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        asked = time.monotonic()
        assert stack.call("status_request") == (200, "running")  # answered from the file, without the lock
        assert time.monotonic() - asked < 2.0
        asked = time.monotonic()
        assert stack.call("stop") == (200, "stopped")  # issue 18: /stop waited for the lock for good
        assert time.monotonic() - asked < 2.0  # the server answers within about 1 s; the rest is a loaded machine's margin
        assert not group_alive(pgid)  # a frozen job cannot run its SIGTERM handler: it was killed
        assert stack.call("status_request") == (200, "stopped")
        assert stack.records("status_report") == []  # a stop is not reported (the job's death is not a failure)
    finally:
        stack.close()
