"""Shared pieces of the service tests (no tests here): a real PM stub + stage server on loopback.

Every process is started in its own session and killed in teardown, job process groups included.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import time
import urllib.parse
from pathlib import Path

import pytest
import yaml

from autonn_nas.service.local_stack import REPO_ROOT, free_port, http_get, start_pm_stub, start_stage

DEMO_VOLUME = REPO_ROOT / "shared_volume"
DEMO_DATASET = "coco128_mini"
USER, PROJECT = "demo_user", "demo_project"
# Tiny search settings: a real search that ends in seconds on a shared 2-core CPU.
TINY_SETTINGS = {"epochs": 1, "img_size": 64, "batch_size": 4, "width": 0.125, "depth": 0.33, "workers": 0}
PM_INFO_TEMPLATE = (DEMO_VOLUME / "common" / USER / PROJECT / "project_info.yaml")


def write_project(shared: Path, user: str = USER, project: str = PROJECT, info: str | None = None,
                  settings: dict | None = None, dataset: str = DEMO_DATASET) -> Path:
    """A project folder as the PM leaves it (project_info.yaml from the embedded demo unless `info` is given)."""
    project_dir = shared / "common" / user / project
    project_dir.mkdir(parents=True, exist_ok=True)
    text = info if info is not None else PM_INFO_TEMPLATE.read_text().replace(f"dataset : {DEMO_DATASET}", f"dataset : {dataset}")
    (project_dir / "project_info.yaml").write_text(text)
    if settings is not None:
        (project_dir / "neck_nas.yaml").write_text(yaml.safe_dump(settings))
    return project_dir


def copy_demo_dataset(shared: Path) -> Path:
    source = DEMO_VOLUME / "datasets" / DEMO_DATASET
    if not (source / "dataset.yaml").is_file():
        pytest.skip(f"the embedded dataset {source} is not there yet")
    target = shared / "datasets" / DEMO_DATASET
    if not target.exists():
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.cache"))
    return target


def fake_dataset(shared: Path, name: str = DEMO_DATASET) -> Path:
    """A dataset.yaml that only needs to exist (for tests that never reach the search)."""
    folder = shared / "datasets" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dataset.yaml").write_text("train: images\nval: images\nnc: 1\nnames: [thing]\n")
    return folder / "dataset.yaml"


def runner_available() -> bool:
    """True once autonn_nas/search/runner.py exists (a runner that exists but fails to import fails the tests)."""
    return (REPO_ROOT / "autonn_nas" / "search" / "runner.py").is_file()


needs_runner = pytest.mark.skipif(not runner_available(), reason="autonn_nas.search.runner.run_search has not landed yet")


def kill_job_groups(shared: Path) -> None:
    """Teardown: SIGKILL the process group of every job a test left behind."""
    for status_file in (shared / "common").glob("*/*/neck_nas/status.json"):
        try:
            pgid = json.loads(status_file.read_text()).get("pgid")
        except (OSError, ValueError):
            continue
        if pgid:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


class Stack:
    """The PM stub and the stage server, both real processes; methods call them like the PM does."""

    def __init__(self, root: Path, pm_up: bool = True, extra_env: dict | None = None, tango: bool = False):
        self.root = root
        self.shared = root / "shared"
        self.shared.mkdir(parents=True, exist_ok=True)
        self.stage_port, self.stub_port = free_port(), free_port()
        self.stage_url = f"http://127.0.0.1:{self.stage_port}"
        self.stub_url = f"http://127.0.0.1:{self.stub_port}"
        self.env = {"NAS_STATUS_UPDATES": "1", "NAS_QUEUE_LOCK": str(root / "queue.lock"), "NAS_STOP_GRACE_S": "3",
                    "NAS_PM_ATTEMPTS": "3", "NAS_PM_TIMEOUT_S": "1", "NAS_PM_BACKOFF_S": "0.2",
                    "OMP_NUM_THREADS": "1", **(extra_env or {})}
        self.tango = tango
        self.stub = None
        if pm_up:
            self.start_pm()
        self.stage = None
        self.start_stage()

    def start_pm(self) -> None:
        """The PM stub on its port (a stack made with pm_up=False gets its PM here, later)."""
        self.stub = start_pm_stub(self.shared, self.stage_url, self.stub_port, self.root / "pm_stub.log", tango=self.tango)

    def start_stage(self) -> None:
        self.stage = start_stage(self.shared, self.stub_url, self.stage_port, self.root / "stage.log", self.env)

    def restart_stage(self, sig: int = signal.SIGKILL) -> None:
        self.stage.stop(sig)
        self.start_stage()

    def close(self) -> None:
        for process in (self.stage, self.stub):
            if process is not None:
                process.stop(signal.SIGKILL, grace=5)
        kill_job_groups(self.shared)

    def call(self, endpoint: str, user: str = USER, project: str = PROJECT, id_key: str = "user_id") -> tuple[int, str]:
        query = urllib.parse.urlencode({id_key: user, "project_id": project})
        # /stop legitimately takes the grace period plus the kill; a loaded CI machine must not turn that into a timeout.
        return http_get(f"{self.stage_url}/{endpoint}?{query}", timeout=30.0)

    def status(self, user: str = USER, project: str = PROJECT) -> dict:
        return json.loads(self.call("status", user, project)[1])

    def records(self, kind: str) -> list[dict]:
        return json.loads(http_get(f"{self.stub_url}/records?kind={kind}")[1])

    def wait_for(self, words: tuple[str, ...], timeout: float, user: str = USER, project: str = PROJECT) -> list[str]:
        """Poll /status_request until it answers one of `words`; returns every distinct word seen."""
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            word = self.call("status_request", user, project)[1]
            if not seen or seen[-1] != word:
                seen.append(word)
            if word in words:
                return seen
            time.sleep(0.1)
        raise AssertionError(f"status stayed {seen} for {timeout}s; job log:\n{self.job_log(user, project)}")

    def wait_detail(self, condition, what: str, timeout: float = 60, user: str = USER, project: str = PROJECT) -> dict:
        """Poll /status until `condition(detail)` holds; returns that detail."""
        deadline, detail = time.monotonic() + timeout, {}
        while time.monotonic() < deadline:
            detail = self.status(user, project)
            if condition(detail):
                return detail
            time.sleep(0.1)
        raise AssertionError(f"{project}: {what} not seen within {timeout}s: {detail}; job log:\n{self.job_log(user, project)}")

    def wait_phase(self, phase: str, timeout: float = 60, user: str = USER, project: str = PROJECT) -> dict:
        return self.wait_detail(lambda detail: detail.get("phase") == phase, f"phase {phase}", timeout, user, project)

    def wait_report(self, timeout: float, project: str = PROJECT) -> dict:
        return self.wait_reports(1, timeout, project)[-1]

    def wait_reports(self, count: int, timeout: float, project: str = PROJECT) -> list[dict]:
        """Wait until the PM stub holds `count` status_reports for `project`. The job writes its final
        status before it reports to the PM, so /status_request can say `completed` a moment before the
        report arrives: tests wait for the report rather than read the records once."""
        deadline = time.monotonic() + timeout
        reports: list[dict] = []
        while time.monotonic() < deadline:
            reports = [r for r in self.records("status_report") if r.get("project_id") == project]
            if len(reports) >= count:
                return reports
            time.sleep(0.1)
        raise AssertionError(f"{len(reports)} status_report(s) for {project} within {timeout}s, expected {count}: {reports}")

    def job_log(self, user: str = USER, project: str = PROJECT) -> str:
        path = self.shared / "common" / user / project / "neck_nas" / "job.log"
        return path.read_text() if path.is_file() else "(no job log)"


# A stand-in for the search, injected into the job processes through sitecustomize (tests only): it lets a
# test provoke what the real search should never do, e.g. an unexpected exception, or a search that hangs.
_FAKE_RUNNER = '''
import os, sys, time, types
from dataclasses import dataclass

@dataclass
class SearchResult:
    out_dir: object = None
    arch: object = None
    model_yaml: object = None
    weights: object = None
    report: object = None
    metrics: dict = None

def run_search(settings, on_event=None):
    mode = os.environ.get("FAKE_SEARCH_MODE", "crash")
    on_event and on_event("nas_start", {"mode": mode})
    if mode == "crash":
        raise RuntimeError("fake search blew up")
    if mode == "finish":
        return _finish(settings)
    if os.environ.get("FAKE_PAUSE_AT") == "locked":
        _pause_holding_the_state_lock()
    for epoch in range(10_000):  # "hang": an endless search that reports progress
        # like the real search, a resumable checkpoint before each epoch's event (only its existence matters here)
        with open(os.path.join(settings.out, "last.pt"), "wb") as checkpoint:
            checkpoint.write(b"fake checkpoint")
        on_event and on_event("epoch_summary", {"epoch": epoch, "epochs": 10_000, "phase": "supernet"})
        time.sleep(0.2)

def _finish(settings):
    """A search that ends at once with a real (tiny, untrained) model, saved as the search's last step saves it,
    so that the job's output phase runs for real; FAKE_PAUSE_AT pauses it inside that phase."""
    from pathlib import Path

    sys.path.insert(0, os.environ["FAKE_TESTS_DIR"])
    from test_export_support import make_bestmodel

    model_yaml, weights = make_bestmodel(Path(settings.out))
    _pause_in_output_phase(os.environ.get("FAKE_PAUSE_AT"))
    return SearchResult(out_dir=Path(settings.out), arch="fake", model_yaml=model_yaml, weights=weights,
                        metrics={"img_size": 64})

def _pause(where):
    """Say where the job is (FAKE_HANDSHAKE_DIR/paused), then wait for the test's FAKE_HANDSHAKE_DIR/go."""
    handshake = os.environ["FAKE_HANDSHAKE_DIR"]
    with open(os.path.join(handshake, "paused"), "w") as marker:
        marker.write(where)
    while not os.path.exists(os.path.join(handshake, "go")):
        time.sleep(0.05)

def _pause_holding_the_state_lock():
    """The next state write (the first epoch's progress, under the state lock) waits for the test first."""
    from autonn_nas.service import state

    write = state.write_status
    def paused_write(paths, new_state):
        state.write_status = write
        _pause("locked")
        return write(paths, new_state)
    state.write_status = paused_write

def _pause_in_output_phase(point):
    # The job's own functions run unchanged; they are only wrapped to wait at one moment of the output phase.
    from autonn_nas.service import handoff, job_record

    if point == "exported":  # the exports are made (phase `exporting`), nothing is placed yet
        export = job_record.export_for_engine
        def paused_export(*args, **kwargs):
            made = export(*args, **kwargs)
            _pause(point)
            return made
        job_record.export_for_engine = paused_export
    elif point == "placing":  # under the state lock, bestmodel.pt placed and the other outputs not yet
        write = handoff.atomic_write_bytes
        def paused_write(path, data):
            written = write(path, data)
            if written.name == "bestmodel.pt":
                _pause(point)
            return written
        handoff.atomic_write_bytes = paused_write
    elif point == "writing":  # inside the atomic write of bestmodel.pt: its temp file written, not yet renamed
        fsync = os.fsync  # utils/files.py syncs the temp file just before renaming it
        def paused_fsync(fd):
            fsync(fd)
            if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")).startswith(".bestmodel.pt."):
                _pause(point)
        os.fsync = paused_fsync

module = types.ModuleType("autonn_nas.search.runner")
module.run_search, module.SearchResult = run_search, SearchResult
sys.modules["autonn_nas.search.runner"] = module
'''


def fake_runner_env(root: Path, mode: str, pause_at: str | None = None) -> dict[str, str]:
    """The environment that gives the stack's jobs the stand-in search: `mode` crash, hang or finish (a real tiny
    model at once); `pause_at` holds the job until the test creates root/go (root/paused says it got there): with
    finish, in its output phase (exported | placing | writing); with hang, `locked`: holding the state lock."""
    site = root / "fake_site"
    site.mkdir(parents=True, exist_ok=True)
    (site / "sitecustomize.py").write_text(_FAKE_RUNNER)
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])), "FAKE_SEARCH_MODE": mode,
            "FAKE_TESTS_DIR": str(Path(__file__).resolve().parent), "FAKE_HANDSHAKE_DIR": str(root),
            "FAKE_PAUSE_AT": pause_at or ""}
