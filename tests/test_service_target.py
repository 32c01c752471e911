"""Every key the project manager writes is honoured or refused with a reason (service/target.py):
acc, precision_level, learning_type + weight_file, target_info's latency table, and a basemodel.yaml of
another detector family. In-process through load_job_inputs, plus one real stage job end to end."""
from __future__ import annotations

import json
import re

import pytest
import torch
import yaml

from autonn_nas.models.search_space import CANDIDATES
from autonn_nas.models.yolo import build_model, load_cfg
from autonn_nas.service.job_inputs import JobInputError, load_job_inputs
from autonn_nas.service.paths import ProjectPaths
from test_service_support import PM_INFO_TEMPLATE, PROJECT, TINY_SETTINGS, USER, Stack, copy_demo_dataset, fake_dataset, needs_runner, write_project

BLOCKS = ("m_16", "m_21", "m_25", "m_29")
# a TANGO YOLOv9 base as its AutoNN's model selection writes it (module names of that family; shortened)
YOLOV9_BASE = {
    "name": "yolov9-t", "hyp": "p5", "imgsz": 640, "nc": 80, "depth_multiple": 1.0, "width_multiple": 1.0, "anchors": 3,
    "backbone": [[-1, 1, "Silence", []], [-1, 1, "Conv", [16, 3, 2]], [-1, 1, "ELAN1", [32, 32, 16]],
                 [-1, 1, "AConv", [64]], [-1, 1, "RepNCSPELAN4", [64, 64, 32, 3]]],
    "head": [[-1, 1, "SPPELAN", [128, 64]], [[-1], 1, "DDetect", ["nc"]]],
}


def _info(**changes) -> str:
    """The demo's project_info.yaml (the PM's flat form) with keys changed, added, or removed (None)."""
    lines, seen = [], set()
    for line in PM_INFO_TEMPLATE.read_text().splitlines():
        key = line.split(":", 1)[0].strip()
        if key in changes:
            seen.add(key)
            if changes[key] is not None:
                lines.append(f"{key} : {changes[key]}")
        else:
            lines.append(line)
    lines += [f"{key} : {value}" for key, value in changes.items() if key not in seen and value is not None]
    return "\n".join(lines) + "\n"


def _inputs(tmp_path, settings: dict | None = None, **info):
    shared = tmp_path / "shared"
    write_project(shared, info=_info(**info), settings=settings)
    fake_dataset(shared)
    return load_job_inputs(ProjectPaths.of(shared, USER, PROJECT)), shared


@pytest.mark.parametrize("acc, precision, half, latency_device", [
    ("cuda", 5, True, "cuda"),
    ("cuda", 10, False, "cuda"),  # the highest precision level keeps fp32
    ("cpu", 5, False, "cpu"),
    ("opencl", 5, False, None),  # no OpenCL device here to measure on
    ("CUDA", None, True, "cuda"),
])
def test_acc_and_precision_choose_the_export_precision_and_latency_device(tmp_path, acc, precision, half, latency_device):
    inputs, _ = _inputs(tmp_path, acc=acc, precision_level=precision)
    assert inputs.half is half
    assert inputs.settings.latency_device == latency_device
    assert any(note.startswith(f"acc {acc.lower()}") for note in inputs.notes), inputs.notes


@pytest.mark.parametrize("key, value, message", [
    ("acc", "tpu", r"acc is 'tpu'; this stage knows cuda, opencl, cpu"),
    ("precision_level", 11, r"precision_level must be an integer 0..10, got 11"),
    ("learning_type", "hpo", r"learning_type hpo: .* does not tune hyperparameters"),
    ("learning_type", "incremental", r"learning_type incremental: "),
    ("learning_type", "sideways", r"learning_type 'sideways' is not one of normal, transfer, finetune"),
    ("learning_type", "transfer", r"learning_type transfer needs weight_file"),
])
def test_keys_it_cannot_honour_are_refused_with_the_reason(tmp_path, key, value, message):
    with pytest.raises(JobInputError, match=r"project_info.yaml: " + message):
        _inputs(tmp_path, **{key: value})


def test_neck_nas_yaml_wins_over_acc(tmp_path):
    inputs, _ = _inputs(tmp_path, settings={"latency_device": "cuda"}, acc="cpu")
    assert inputs.settings.latency_device == "cuda"
    assert any("from neck_nas.yaml kept" in note for note in inputs.notes)


def test_transfer_learning_warm_starts_from_weight_file(tmp_path):
    shared = tmp_path / "shared"
    project_dir = write_project(shared, info=_info(learning_type="transfer", weight_file="pretrained/base.pt"))
    fake_dataset(shared)
    (project_dir / "pretrained").mkdir()
    (project_dir / "pretrained" / "base.pt").write_bytes(b"weights")
    inputs = load_job_inputs(ProjectPaths.of(shared, USER, PROJECT))
    assert inputs.settings.weights == str((project_dir / "pretrained" / "base.pt").resolve())
    assert any("starts from" in note for note in inputs.notes)


@pytest.mark.parametrize("weight_file, message", [
    ("missing.pt", r"weight_file .*missing.pt' does not exist"),
    ("../../../../etc/passwd", r"outside the shared volume"),
])
def test_transfer_weight_file_must_exist_inside_the_volume(tmp_path, weight_file, message):
    with pytest.raises(JobInputError, match=message):
        _inputs(tmp_path, learning_type="transfer", weight_file=weight_file)


def test_normal_learning_says_it_does_not_use_weight_file(tmp_path):
    inputs, _ = _inputs(tmp_path, learning_type="normal", weight_file="x.pt")
    assert inputs.settings.weights is None
    assert any("weight_file 'x.pt' not used" in note for note in inputs.notes)


def _latency_table(shared, target: str) -> str:
    folder = shared / "latency_tables"
    folder.mkdir(parents=True, exist_ok=True)
    table = {"fixed": 2.0, "img_size": 64, "blocks": {b: {c: 1.0 + i for i, c in enumerate(CANDIDATES)} for b in BLOCKS}}
    (folder / f"{target}.json").write_text(json.dumps(table))
    return str((folder / f"{target}.json").resolve())


def test_target_info_selects_its_latency_table(tmp_path):
    shared = tmp_path / "shared"
    table = _latency_table(shared, "Jetson_Nano")
    inputs, _ = _inputs(tmp_path, target_info="Jetson_Nano", acc="cuda")
    s = inputs.settings
    assert (s.cost_measure, s.latency_table, s.latency_device) == ("latency", table, None)  # measured on the target itself
    assert any(f"latency table {table}" in note for note in inputs.notes)


def test_target_without_a_table_and_a_table_neck_nas_yaml_overrides(tmp_path):
    inputs, shared = _inputs(tmp_path, target_info="Galaxy_S22")
    assert inputs.settings.cost_measure == "flops" and inputs.settings.latency_table is None
    assert any("no latency table" in note for note in inputs.notes)
    _latency_table(shared, "Galaxy_S22")
    (shared / "common" / USER / PROJECT / "neck_nas.yaml").write_text("cost_measure: params\n")
    inputs = load_job_inputs(ProjectPaths.of(shared, USER, PROJECT))
    assert inputs.settings.cost_measure == "params" and inputs.settings.latency_table is None
    assert any("not used, neck_nas.yaml sets the cost" in note for note in inputs.notes)


@pytest.mark.parametrize("target", ["../Jetson_Nano", ".hidden", "a/b"])
def test_target_info_is_never_a_path(tmp_path, target):
    shared = tmp_path / "shared"
    _latency_table(shared, "Jetson_Nano")
    (shared / "latency_tables" / ".hidden.json").write_text("{}")
    inputs, _ = _inputs(tmp_path, target_info=target)
    assert inputs.settings.latency_table is None


def test_basemodel_of_another_family_falls_back_to_the_builtin_base(tmp_path):
    shared = tmp_path / "shared"
    project_dir = write_project(shared)
    fake_dataset(shared)
    (project_dir / "basemodel.yaml").write_text(yaml.safe_dump(YOLOV9_BASE, sort_keys=False))
    inputs = load_job_inputs(ProjectPaths.of(shared, USER, PROJECT))
    assert inputs.search_cfg is None and inputs.settings.cfg == "yolov4-p5-search.yaml"
    note = next(n for n in inputs.notes if n.startswith("basemodel.yaml"))
    assert "another family" in note and "RepNCSPELAN4" in note and "yolov4-p5-search.yaml is searched instead" in note


def test_broken_basemodel_is_still_an_error(tmp_path):
    shared = tmp_path / "shared"
    project_dir = write_project(shared)
    fake_dataset(shared)
    (project_dir / "basemodel.yaml").write_text("backbone: [unclosed\n")
    with pytest.raises(JobInputError, match="not valid YAML"):
        load_job_inputs(ProjectPaths.of(shared, USER, PROJECT))


@needs_runner
@pytest.mark.slow
def test_stage_job_honours_the_pm_keys_end_to_end(tmp_path):
    """A real job: a YOLOv9 basemodel.yaml (the built-in base is searched), transfer learning from a base
    state_dict in the project folder (the supernet starts from it), and the report says both."""
    stack = Stack(tmp_path)
    try:
        copy_demo_dataset(stack.shared)
        project_dir = write_project(stack.shared, settings=TINY_SETTINGS,
                                    info=_info(learning_type="transfer", weight_file="base_weights.pt", acc="cpu"))
        (project_dir / "basemodel.yaml").write_text(yaml.safe_dump(YOLOV9_BASE, sort_keys=False))
        base = build_model("yolov4-p5.yaml", nc=80, width=TINY_SETTINGS["width"], depth=TINY_SETTINGS["depth"])
        torch.save(base.state_dict(), project_dir / "base_weights.pt")
        assert stack.call("start") == (200, "started")
        seen = stack.wait_for(("completed", "failed"), 300)
        assert seen[-1] == "completed", stack.job_log()
        log = stack.job_log()
        assert re.search(r"warm start: every candidate begins from the weights in \S*base_weights.pt", log), log
        assert "RepNCSPELAN4" in log
        report = (project_dir / "neck_nas" / "report.md").read_text()
        section = report.split("## Project inputs", 1)[1]
        assert "basemodel.yaml: a model of another family" in section and "base_weights.pt" in section and "acc cpu" in section
        assert json.loads((project_dir / "neck_nas" / "report.json").read_text())["stage_inputs"] == stack.status()["input_notes"]
        assert load_cfg(project_dir / "neck_nas_model.yaml")["backbone"] == load_cfg("yolov4-p5.yaml")["backbone"]
    finally:
        stack.close()
