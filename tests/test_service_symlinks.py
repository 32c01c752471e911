"""Symlinks inside the shared volume that lead outside it (issue 18): the stage neither reads nor writes through
them, refuses with the path named, and never shows what the file outside holds."""
from __future__ import annotations

import shutil

import pytest

from autonn_nas.service.paths import ProjectPaths
from test_service_support import DEMO_DATASET, DEMO_VOLUME, fake_dataset, write_project

SECRET = "secret-line-of-a-file-outside"


@pytest.fixture
def outside(shared_stack):
    """A folder beside the shared volume, not on it."""
    folder = shared_stack.root / "outside"
    folder.mkdir(exist_ok=True)
    return folder


def _files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_run_folder_symlinked_outside_is_refused(shared_stack, outside):
    project_dir = write_project(shared_stack.shared, project="run_link")
    fake_dataset(shared_stack.shared)
    target = outside / "run_link"
    target.mkdir()
    (project_dir / "neck_nas").symlink_to(target)
    assert shared_stack.call("start", project="run_link") == (400, "failed")
    assert shared_stack.call("status_request", project="run_link") == (400, "failed")
    assert "run folder" in shared_stack.status(project="run_link")["error"]
    assert _files(target) == []  # no status, log or lock written through the link


def test_job_log_symlinked_outside_is_refused(shared_stack, outside):
    project_dir = write_project(shared_stack.shared, project="log_link")
    fake_dataset(shared_stack.shared)
    (project_dir / "neck_nas").mkdir()
    target = outside / "log_link.txt"
    target.write_text(SECRET)
    (project_dir / "neck_nas" / "job.log").symlink_to(target)
    assert shared_stack.call("start", project="log_link") == (400, "failed")
    assert target.read_text() == SECRET  # nothing appended


def test_project_info_symlinked_outside_is_refused_without_its_text(shared_stack, outside):
    project_dir = write_project(shared_stack.shared, project="info_link")
    fake_dataset(shared_stack.shared)
    target = outside / "info.txt"
    target.write_text(SECRET + "\n")  # issue 18: its first line was in the /status error
    (project_dir / "project_info.yaml").unlink()
    (project_dir / "project_info.yaml").symlink_to(target)
    assert shared_stack.call("start", project="info_link") == (400, "failed")
    error = shared_stack.status(project="info_link")["error"]
    assert "outside the shared volume" in error and SECRET not in error, error
    assert SECRET not in shared_stack.job_log(project="info_link")


def test_symlink_in_the_run_folder_leading_outside_is_refused(shared_stack, outside):
    project_dir = write_project(shared_stack.shared, project="run_file_link")
    fake_dataset(shared_stack.shared)
    (project_dir / "neck_nas" / "plots").mkdir(parents=True)
    (project_dir / "neck_nas" / "plots" / "results.png").symlink_to(outside / "results.png")  # the search would write it
    assert shared_stack.call("start", project="run_file_link") == (400, "failed")
    assert "1 symlink(s) lead outside" in shared_stack.status(project="run_file_link")["error"]
    assert not (outside / "results.png").exists()


def _linked_dataset(shared_stack, outside, name: str, link: str) -> None:
    """The demo dataset under `name`, with `link` (labels folder or one image) moved outside and symlinked back."""
    dataset = shared_stack.shared / "datasets" / name
    if dataset.exists():
        return
    shutil.copytree(DEMO_VOLUME / "datasets" / DEMO_DATASET, dataset, ignore=shutil.ignore_patterns("*.cache"))
    moved = outside / name / link
    moved.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(dataset / link, moved)
    for label in sorted(moved.rglob("*.txt"))[:1]:  # a bad row: its text would be quoted in a scan's report
        label.write_text(SECRET + "\n")
    (dataset / link).symlink_to(moved)


@pytest.mark.parametrize("name, link, expect", [
    ("labels_outside", "labels", "label file(s) of the dataset resolve outside"),
    ("image_outside", "images/train2017/" + "{first}", "1 image(s) of the dataset resolve outside"),
])
def test_dataset_files_leading_outside_fail_the_job_before_anything_is_read(shared_stack, outside, name, link, expect):
    if "{first}" in link:
        images = DEMO_VOLUME / "datasets" / DEMO_DATASET / "images" / "train2017"
        link = link.format(first=sorted(p.name for p in images.iterdir())[0])
    _linked_dataset(shared_stack, outside, name, link)
    project = f"data_{name}"
    write_project(shared_stack.shared, project=project, dataset=name)
    before = _files(outside)
    assert shared_stack.call("start", project=project) == (200, "started")  # /start checks only that dataset.yaml exists
    assert shared_stack.wait_for(("completed", "failed"), 120, project=project)[-1] == "failed"
    error = shared_stack.status(project=project)["error"]
    assert expect in error and SECRET not in error, error
    assert SECRET not in shared_stack.job_log(project=project)
    assert _files(outside) == before  # no train.cache (or anything else) written outside


def test_remove_outputs_unlinks_a_symlinked_model_package(tmp_path):
    paths = ProjectPaths.of(tmp_path / "shared", "u", "p")
    paths.project_dir.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.py").write_text("not ours")
    (paths.project_dir / "neck_nas_models").symlink_to(elsewhere)
    paths.remove_outputs()
    assert not (paths.project_dir / "neck_nas_models").exists() and (elsewhere / "keep.py").is_file()
