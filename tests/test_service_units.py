"""In-process pieces of the stage: ids, project_info parsing, job inputs, the PM client's bounded retries."""
from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path

import pytest
import yaml

from autonn_nas.models.yolo import CONFIG_DIR, config_rows, load_cfg, searchable_labels
from autonn_nas.service.config import ServiceConfig
from autonn_nas.service.job_inputs import JobInputError, load_job_inputs
from autonn_nas.service.local_stack import free_port
from autonn_nas.service.paths import InvalidIdError, ProjectPaths, check_id
from autonn_nas.service.pm_client import PMClient
from autonn_nas.service.project_info import ProjectInfoError, read_project_info
from test_service_support import PM_INFO_TEMPLATE, fake_dataset, write_project


@pytest.mark.parametrize("good", ["demo_user", "p-1", "A.b_c", "x" * 128, "v1.2", "a@b.c+d", "7-up"])
def test_plain_ids_pass(good):
    assert check_id("user_id", good) == good


@pytest.mark.parametrize("bad", ["", None, ".", "..", "../x", "a/b", "a\\b", "..a", "a..b", "a b", "a\n", "x" * 129, "é",
                                 "-h", "--resume", "_x", ".hidden", "@home", "+1"])
def test_other_ids_refused(bad):
    with pytest.raises(InvalidIdError):
        check_id("user_id", bad)


def test_pm_written_project_info():
    info = read_project_info(PM_INFO_TEMPLATE)
    assert info["task_type"] == "detection" and info["dataset"] == "coco128_mini" and info["lightweight_level"] == 5
    assert "basemodel" not in info and "nas_type" not in info  # commented out by the PM


@pytest.mark.parametrize("text, expected", [
    ("task_type : detection\ndataset : coco\n", {"task_type": "detection", "dataset": "coco"}),
    ("task_type: detection\nmemory: 8\n", {"task_type": "detection", "memory": 8}),
    # not valid YAML (a tab, a duplicate-looking colon), still the PM's flat format
    ("task_type :\tdetection\ntarget_info : K8S:Jetson\nnfs_path : /shared # a comment\n",
     {"task_type": "detection", "target_info": "K8S:Jetson", "nfs_path": "/shared"}),
    ("# only comments\n", {}),
])
def test_project_info_formats(tmp_path, text, expected):
    path = tmp_path / "project_info.yaml"
    path.write_text(text)
    info = read_project_info(path)
    assert {k: info[k] for k in expected} == expected


def test_project_info_errors_name_file_and_line(tmp_path):
    path = tmp_path / "project_info.yaml"
    path.write_text("task_type : detection\n{{{ broken\n")
    with pytest.raises(ProjectInfoError, match=r"project_info.yaml, line 2"):
        read_project_info(path)
    with pytest.raises(ProjectInfoError, match="not found"):
        read_project_info(tmp_path / "missing.yaml")


def test_job_inputs_fill_settings(tmp_path):
    shared = tmp_path / "shared"
    write_project(shared, settings={"epochs": 2, "strategy": "spos"})
    dataset_yaml = fake_dataset(shared)
    paths = ProjectPaths.of(shared, "demo_user", "demo_project")
    inputs = load_job_inputs(paths, resume=True)
    s = inputs.settings
    assert (s.epochs, s.strategy, s.lightweight_level, s.resume) == (2, "spos", 5, True)
    assert s.data == str(dataset_yaml.resolve()) and s.out == str(paths.run_dir)
    assert inputs.search_cfg is None and s.cfg == "yolov4-p5-search.yaml"


def test_basemodel_neck_becomes_the_search_space(tmp_path):
    shared = tmp_path / "shared"
    project_dir = write_project(shared)
    fake_dataset(shared)
    shutil.copy(CONFIG_DIR / "yolov4-p5.yaml", project_dir / "basemodel.yaml")
    paths = ProjectPaths.of(shared, "demo_user", "demo_project")
    inputs = load_job_inputs(paths)
    assert inputs.settings.cfg == str(paths.run_dir / "basemodel_search.yaml")
    assert searchable_labels(inputs.search_cfg) == ["m_16", "m_21", "m_25", "m_29"]
    assert config_rows(inputs.search_cfg) == config_rows(load_cfg("yolov4-p5-search.yaml"))


def test_basemodel_without_a_neck_searches_the_builtin_base_and_says_why(tmp_path):
    shared = tmp_path / "shared"
    project_dir = write_project(shared)
    fake_dataset(shared)
    cfg = load_cfg("yolov4-p5.yaml")
    cfg["head"] = [[-1, 1, "BottleneckCSP", row[3]] if row[2] == "BottleneckCSP2" else row for row in cfg["head"]]
    (project_dir / "basemodel.yaml").write_text(yaml.safe_dump(cfg))
    inputs = load_job_inputs(ProjectPaths.of(shared, "demo_user", "demo_project"))
    assert inputs.search_cfg is None and inputs.settings.cfg == "yolov4-p5-search.yaml"
    assert any(note.startswith("basemodel.yaml: its head has no BottleneckCSP2 rows") for note in inputs.notes), inputs.notes


def test_symlinked_dataset_outside_shared_refused(tmp_path):
    shared = tmp_path / "shared"
    write_project(shared)
    outside = fake_dataset(tmp_path / "elsewhere").parent
    (shared / "datasets").mkdir(parents=True)
    (shared / "datasets" / "coco128_mini").symlink_to(outside)
    with pytest.raises(JobInputError, match="outside the shared volume"):
        load_job_inputs(ProjectPaths.of(shared, "demo_user", "demo_project"))


def test_pm_down_bounded_and_never_raises(tmp_path):
    config = dataclasses.replace(ServiceConfig.from_env({"SHARED_DIR": str(tmp_path)}), pm_url=f"http://127.0.0.1:{free_port()}",
                                 pm_attempts=3, pm_timeout_s=0.5, pm_backoff_s=0.1, status_updates=True)
    started = time.monotonic()
    delivered, problem = PMClient(config).status_report("u", "p", "completed")
    assert delivered is False and "ConnectionError" in problem
    assert PMClient(config).status_update("u", "p", "epoch_summary", {"epoch": 0}) is False
    assert time.monotonic() - started < 3 * 0.5 + 0.1 + 0.2 + 2.0


def test_status_updates_off_by_default(tmp_path):
    config = ServiceConfig.from_env({"SHARED_DIR": str(tmp_path)})
    assert config.status_updates is False and config.port == 8089 and config.pm_url == "http://projectmanager:8085"
    assert PMClient(config).status_update("u", "p", "nas_start", {}) is False


def test_env_errors_are_clear():
    with pytest.raises(ValueError, match="PORT"):
        ServiceConfig.from_env({"PORT": "eighty"})


def test_pm_stub_creates_the_demo_project(tmp_path):
    import subprocess
    import sys

    from autonn_nas.service.local_stack import REPO_ROOT

    shared = tmp_path / "shared"
    result = subprocess.run([sys.executable, "-m", "project_manager_stub", "create-project", "--shared", str(shared),
                             "--user-id", "alice", "--project-id", "p1"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    project = shared / "common" / "alice" / "p1"
    assert read_project_info(project / "project_info.yaml")["dataset"] == "coco128_mini"
    assert (shared / "datasets" / "coco128_mini" / "dataset.yaml").is_file()
    inputs = load_job_inputs(ProjectPaths.of(shared, "alice", "p1"))
    assert inputs.settings.lightweight_level == 5


def test_dataset_pointing_outside_the_shared_volume_is_refused(tmp_path):
    from autonn_nas.service.job_inputs import check_dataset_inside
    from test_service_support import DEMO_VOLUME

    shared = tmp_path / "shared"
    paths = ProjectPaths.of(shared, "demo_user", "demo_project")
    outside = DEMO_VOLUME / "datasets" / "coco128_mini" / "images"
    if not outside.is_dir():
        pytest.skip("the embedded dataset is not there yet")
    dataset_yaml = fake_dataset(shared)
    dataset_yaml.write_text(f"train: {outside / 'train2017'}\nval: {outside / 'val2017'}\nnc: 80\n")
    with pytest.raises(JobInputError, match="outside the shared volume"):
        check_dataset_inside(paths, dataset_yaml)


def test_remove_outputs_sweeps_what_a_killed_placement_leaves(tmp_path):
    """A job killed while placing its outputs leaves some of them, an atomic write's temp file and the model
    package's staging folder; the server's clean-up must leave none of it (and nothing else is touched)."""
    import tempfile

    paths = ProjectPaths.of(tmp_path, "u", "p")
    project = paths.project_dir
    project.mkdir(parents=True)
    (project / "bestmodel.pt").write_bytes(b"weights")
    _, temp = tempfile.mkstemp(prefix=".neural_net_info.yaml.", suffix=".tmp", dir=project)  # as utils/files.py names it
    staging = Path(tempfile.mkdtemp(prefix=".neck_nas_models.", dir=project))  # as export/standalone.py names it
    (staging / "yolo.py").write_text("# half a package")
    kept = [project / "project_info.yaml", project / ".hidden_by_someone_else", project / "bestmodel.pt.bak"]
    for path in kept:
        path.write_text("not ours to delete")
    paths.remove_outputs()
    assert sorted(p.name for p in project.iterdir()) == sorted(p.name for p in kept)


@pytest.mark.parametrize("code, body, taken", [
    (200, '{"status": "success"}', True),  # TANGO's PM took it
    (200, "ok", True), (200, '"ok"', True), (200, "", True),  # older PMs, the stub
    (200, "Error: container_id 'neck_nas' is not one of autonn, code_gen", False),  # TANGO's PM: unknown id
    (200, "not found", False), (500, '{"status": "success"}', False), (404, "ok", False),
])
def test_only_an_acknowledged_report_counts_as_delivered(code, body, taken):
    import requests

    from autonn_nas.service.pm_client import acknowledged

    response = requests.Response()
    response.status_code, response._content = code, body.encode()
    assert acknowledged(response) is taken


def test_job_state_reads_and_writes_the_same_json(tmp_path):
    """status.json of an earlier version (a subset of the keys, one this version does not know) reads into a JobState
    and is written back with the same values: nothing of it is lost."""
    import json

    from autonn_nas.service.state import JobState, read_status, write_status

    paths = ProjectPaths.of(tmp_path, "u", "p")
    old = {"status": "running", "job_id": "abc", "pid": 12, "epoch": 3, "progress": 0.5, "an_older_key": [1, 2]}
    paths.run_dir.mkdir(parents=True)
    paths.status_file.write_text(json.dumps(old))
    state = read_status(paths)
    assert isinstance(state, JobState) and state.active and (state.job_id, state.epoch) == ("abc", 3)
    write_status(paths, state.replace(epoch=4))
    written = json.loads(paths.status_file.read_text())
    assert {k: written[k] for k in old} == old | {"epoch": 4} and written["updated_at"]
    paths.status_file.write_text("[1, 2]")
    assert read_status(paths).status == "failed" and "unreadable" in read_status(paths).error


def test_file_lock_times_out_while_another_process_holds_it(tmp_path):
    import subprocess
    import sys

    from autonn_nas.service.file_lock import LockTimeout, file_lock

    lock = tmp_path / "x.lock"
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a+'); "
                               "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)", str(lock)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        with pytest.raises(LockTimeout):
            with file_lock(lock, timeout=0.2):
                pass
        assert 0.2 <= time.monotonic() - started < 2.0
    finally:
        holder.kill()
        holder.wait()
    with file_lock(lock, timeout=5):  # freed by the kernel with its holder
        pass
