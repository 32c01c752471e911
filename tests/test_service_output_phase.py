"""/stop, or a kill, while the job places its outputs: the project folder ends with all of them or none,
never part of the set, and no temp files (the stand-in search of test_service_support pauses the job there)."""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from autonn_nas.service.state import group_alive
from test_service_support import PROJECT, USER, Stack, copy_demo_dataset, fake_runner_env, write_project

# the demo project's engine is pytorch: its export is the TorchScript file
OUTPUTS = {"neck_nas_model.yaml", "bestmodel.pt", "bestmodel.torchscript", "neural_net_info.yaml", "neck_nas_models"}


@pytest.fixture
def paused_stack(tmp_path, request):
    stack = Stack(tmp_path, extra_env=fake_runner_env(tmp_path, "finish", pause_at=request.param))
    write_project(stack.shared)
    copy_demo_dataset(stack.shared)
    try:
        yield stack
    finally:
        (tmp_path / "go").touch()  # a job still paused goes on (and is then killed with the stack)
        stack.close()


def _project_dir(stack: Stack) -> Path:
    return stack.shared / "common" / USER / PROJECT


def _placed(stack: Stack) -> set[str]:
    return {name for name in OUTPUTS if (_project_dir(stack) / name).exists()}


def _leftovers(stack: Stack) -> list[str]:
    """Temp files of atomic writes and staging folders, in the project folder and its run folder."""
    project = _project_dir(stack)
    return sorted(str(p.relative_to(project)) for p in [*project.glob(".*"), *(project / "neck_nas").glob(".*")]
                  if p.name != ".status.lock")


def _wait_paused(stack: Stack, timeout: float = 120) -> str:
    marker = stack.root / "paused"
    deadline = time.monotonic() + timeout
    while not marker.is_file():
        assert time.monotonic() < deadline, f"the job never reached its pause within {timeout}s; job log:\n{stack.job_log()}"
        time.sleep(0.1)
    return marker.read_text()


def _pgid(stack: Stack) -> int:
    return json.loads((_project_dir(stack) / "neck_nas" / "status.json").read_text())["pgid"]


@pytest.mark.parametrize("paused_stack", ["exported"], indirect=True)
def test_stop_while_exporting_leaves_no_outputs(paused_stack):
    assert paused_stack.call("start") == (200, "started")
    assert _wait_paused(paused_stack) == "exported"
    assert paused_stack.status()["phase"] == "exporting"
    assert (_project_dir(paused_stack) / "neck_nas" / "bestmodel.torchscript").is_file()  # made in the run folder
    assert _placed(paused_stack) == set()  # and nothing placed in the project folder before the lock is held
    pgid = _pgid(paused_stack)
    assert paused_stack.call("stop") == (200, "stopped")
    # /stop answers within a second; a job slower to end is killed and cleaned up in the background
    deadline = time.monotonic() + 30
    while (group_alive(pgid) or _placed(paused_stack) or _leftovers(paused_stack)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not group_alive(pgid)
    assert paused_stack.call("status_request") == (200, "stopped")
    assert _placed(paused_stack) == set() and _leftovers(paused_stack) == []
    assert paused_stack.status()["outputs"] == {}


@pytest.mark.parametrize("paused_stack", ["placing"], indirect=True)
def test_stop_while_placing_stops_the_job_and_the_pm_never_hears_completed(paused_stack):
    """Placing runs outside the state lock: a /stop in the middle of it answers `stopped` at once, and the job ends
    stopped with none of its outputs; the PM hears nothing (a /stop is not reported), `completed` least of all."""
    assert paused_stack.call("start") == (200, "started")
    assert _wait_paused(paused_stack) == "placing"
    assert _placed(paused_stack) == {"bestmodel.pt"}  # the pause really is in the middle of the placing
    pgid = _pgid(paused_stack)
    asked = time.monotonic()
    assert paused_stack.call("stop") == (200, "stopped")
    assert time.monotonic() - asked < 2.0
    (paused_stack.root / "go").touch()  # were the job still going, it would now place the rest and commit
    deadline = time.monotonic() + 30
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not group_alive(pgid)
    assert paused_stack.call("status_request") == (200, "stopped")
    assert _placed(paused_stack) == set() and _leftovers(paused_stack) == []
    # every process of the job is gone and no report is kept for the server to send: nobody can report it any more
    assert not (_project_dir(paused_stack) / "neck_nas" / "outbox.json").exists()
    assert paused_stack.records("status_report") == []


@pytest.mark.parametrize("paused_stack", [None], indirect=True)
def test_stop_after_the_job_completed_says_so_and_keeps_the_outputs(paused_stack):
    assert paused_stack.call("start") == (200, "started")
    assert paused_stack.wait_for(("completed", "failed"), 120)[-1] == "completed", paused_stack.job_log()
    assert paused_stack.wait_report(30)["status"] == "completed"
    assert paused_stack.call("stop") == (200, "completed")  # nothing was stopped: the PM is told, not misled
    assert paused_stack.call("status_request") == (200, "completed")
    assert _placed(paused_stack) == OUTPUTS


@pytest.mark.parametrize("paused_stack", ["placing", "writing"], indirect=True)
def test_job_killed_while_placing_leaves_no_outputs(paused_stack, request):
    """What /stop cannot do but an out-of-memory kill can: SIGKILL in the middle of the placing, between two
    outputs or in the middle of writing one (its temp file is then left for the server to remove)."""
    point = request.node.callspec.params["paused_stack"]
    assert paused_stack.call("start") == (200, "started")
    assert _wait_paused(paused_stack) == point
    if point == "writing":
        assert [p.startswith(".bestmodel.pt.") for p in _leftovers(paused_stack)] == [True]
    os.killpg(_pgid(paused_stack), signal.SIGKILL)
    paused_stack.wait_for(("failed",), 30)
    assert _placed(paused_stack) == set() and _leftovers(paused_stack) == []


@pytest.mark.parametrize("paused_stack", ["writing"], indirect=True)
def test_server_then_job_killed_while_placing_is_found_without_a_request(paused_stack):
    """The server dies while the job places its outputs; a new server starts while the job still runs (it is not
    its child), then the job dies too: the new server finds it, removes what it left and reports it failed."""
    assert paused_stack.call("start") == (200, "started")
    assert _wait_paused(paused_stack) == "writing"
    pgid = _pgid(paused_stack)
    paused_stack.stage.stop(signal.SIGKILL)
    paused_stack.start_stage()
    assert paused_stack.call("status_request") == (200, "running")
    os.killpg(pgid, signal.SIGKILL)
    assert paused_stack.wait_report(30)["status"] == "failed"  # no request made: the server's own patrol found it
    assert paused_stack.call("status_request") == (200, "failed")
    assert _placed(paused_stack) == set() and _leftovers(paused_stack) == []
