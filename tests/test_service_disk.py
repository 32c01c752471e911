"""A project folder the stage cannot write, and a disk that fills up during a job: the cause is named by its
errno in /status (and in job.log where it can be written), never `ready` with no reason or a bare RuntimeError.

Real conditions: a read-only or size-limited tmpfs mounted into the volume (needs root; skipped otherwise)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from test_service_support import Stack, copy_demo_dataset, fake_runner_env, write_project


def _mount_tmpfs(folder: Path, options: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs root and mount (a tmpfs for a read-only or full folder)")


def _unmount(folder: Path) -> None:
    subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@pytest.fixture
def stack(tmp_path):
    stack = Stack(tmp_path, extra_env=fake_runner_env(tmp_path, "finish"))
    copy_demo_dataset(stack.shared)
    yield stack
    stack.close()


def test_read_only_project_folder_is_named_in_status(stack):
    project_dir = stack.shared / "common" / "demo_user" / "read_only"
    _mount_tmpfs(project_dir, "size=1m")
    try:
        write_project(stack.shared, project="read_only")
        subprocess.run(["mount", "-o", "remount,ro", str(project_dir)], check=True)
        assert stack.call("start", project="read_only") == (500, "failed")
        assert stack.call("status_request", project="read_only") == (200, "failed")  # issue 18: `ready`
        error = stack.status(project="read_only")["error"]
        assert "read-only file system (EROFS)" in error and "read_only/neck_nas" in error, error
    finally:
        _unmount(project_dir)


def test_disk_full_during_the_job_is_named_in_status_and_log(stack):
    run_dir = stack.shared / "common" / "demo_user" / "demo_project" / "neck_nas"
    _mount_tmpfs(run_dir, "size=1m")  # the run folder holds 1 MB: the job's log and state fit, its weights do not
    try:
        write_project(stack.shared)
        assert stack.call("start") == (200, "started")
        assert stack.wait_for(("completed", "failed"), 120)[-1] == "failed", stack.job_log()
        error = stack.status()["error"]
        assert "no space left on the device (ENOSPC)" in error and "bestmodel.pt" in error, error
        assert not error.startswith("internal error")
        assert error in stack.job_log()
    finally:
        _unmount(run_dir)
