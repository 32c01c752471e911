"""What the stage parses is bounded before it is used (issue 18): YAML size, aliases and depth; settings by
type and range; model sizes by arithmetic, and nothing model-sized built in the server."""
from __future__ import annotations

import json
import time

import pytest
import yaml

from autonn_nas.models.bounded_yaml import MAX_BYTES, YamlBoundsError, YamlInputError, load_yaml_file, load_yaml_text
from autonn_nas.models.yolo import CONFIG_DIR, load_cfg
from autonn_nas.search.limits import MAX_MODEL_PARAMS, SizeLimitError, check_cfg_rows, check_model_params
from test_service_support import PM_INFO_TEMPLATE, USER, fake_dataset, write_project

# 7 levels of ten aliases each: 10^7 strings once expanded, from a 300-byte file (issue 18: 52 MB status.json)
ALIAS_BOMB = "task_type : detection\ndataset : coco128_mini\na: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(6))


def _server_peak_rss_mb(stack) -> float:
    """The server process's peak resident memory so far (VmHWM), in MB."""
    status = open(f"/proc/{stack.stage.process.pid}/status").read()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) / 1024


def test_alias_bomb_refused_at_start(shared_stack):
    project_dir = write_project(shared_stack.shared, project="alias_bomb", info=ALIAS_BOMB)
    fake_dataset(shared_stack.shared)
    assert len(ALIAS_BOMB) < 400
    assert shared_stack.call("start", project="alias_bomb") == (400, "failed")
    error = shared_stack.status(project="alias_bomb")["error"]
    assert "project_info.yaml, line 4: YAML aliases" in error, error
    assert (project_dir / "neck_nas" / "status.json").stat().st_size < 4096
    assert (project_dir / "neck_nas" / "job.log").stat().st_size < 4096


def test_oversized_basemodel_refused_at_start_without_building_it(shared_stack):
    project_dir = write_project(shared_stack.shared, project="huge_base")
    fake_dataset(shared_stack.shared)
    cfg = load_cfg(CONFIG_DIR / "yolov4-p5.yaml")
    # row 16 with 30000 channels: a server that builds it (even at 1/16 width) takes 500 MB; issue 18's 90000 took 6 GB
    cfg["head"][5] = [-1, 3, "BottleneckCSP2", [30000]]
    (project_dir / "basemodel.yaml").write_text(yaml.safe_dump(cfg))
    peak_before = _server_peak_rss_mb(shared_stack)
    asked = time.monotonic()
    assert shared_stack.call("start", project="huge_base") == (400, "failed")
    assert time.monotonic() - asked < 5.0
    assert _server_peak_rss_mb(shared_stack) - peak_before < 100
    error = shared_stack.status(project="huge_base")["error"]
    assert "basemodel.yaml: head row 5: 30000 output channels" in error, error


@pytest.mark.parametrize("settings, expect", [
    ({"seed": "abc"}, "seed must be an integer, got 'abc'"),
    ({"batch_size": 1_000_000_000}, "batch_size must be at most 1024"),
    ({"width": 1e6}, "width must be at most 4"),
    ({"holdout_fraction": "half"}, "holdout_fraction must be a number"),
    ({"img_size": 2048, "batch_size": 512}, "pixels a step"),
    ({"hyp": {"lr0": [1, 2]}}, "hyp:"),
])
def test_settings_checked_by_type_and_range_at_start(shared_stack, settings, expect):
    case = "settings_" + "_".join(settings)
    write_project(shared_stack.shared, project=case, settings=settings)
    fake_dataset(shared_stack.shared)
    assert shared_stack.call("start", project=case) == (400, "failed")
    error = shared_stack.status(project=case)["error"]
    assert "neck_nas.yaml" in error and expect in error, error
    assert expect in shared_stack.job_log(project=case)


@pytest.mark.parametrize("line, expect", [
    ("dataset : [coco128_mini, other]", "dataset must be a single value"),
    ("acc : " + "x" * 300, "acc is 300 characters long"),
    ("precision_level : 1e9", "precision_level must be an integer 0..10"),
])
def test_project_info_values_checked_at_start(shared_stack, line, expect):
    case = "info_" + line.split(" ")[0]
    text = PM_INFO_TEMPLATE.read_text()
    key = line.split(" ")[0]
    text = "\n".join(line if row.split(" ")[0] == key else row for row in text.splitlines()) + "\n"
    write_project(shared_stack.shared, project=case, info=text)
    fake_dataset(shared_stack.shared)
    assert shared_stack.call("start", project=case) == (400, "failed")
    error = shared_stack.status(project=case)["error"]
    assert expect in error and len(error) < 400, error


# ---- in-process: the loader and the arithmetic ------------------------------------------------------------------
def test_bounded_yaml_refuses_size_aliases_and_depth_and_never_quotes_the_file(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("a: " + "x" * MAX_BYTES)
    with pytest.raises(YamlBoundsError, match="larger than"):
        load_yaml_file(big)
    with pytest.raises(YamlBoundsError, match="line 2: YAML aliases"):
        load_yaml_text("a: &x [1]\nb: *x\n", "f.yaml")
    with pytest.raises(YamlBoundsError, match="nested more than"):
        load_yaml_text("[" * 1000 + "]" * 1000, "f.yaml")
    with pytest.raises(YamlInputError) as error:
        load_yaml_text("ok: 1\nsecret-token-123: [unclosed\n", "f.yaml")
    assert "f.yaml, line 3" in str(error.value) and "secret-token-123" not in str(error.value)
    assert load_yaml_text("a: [1, {b: 2}]\n", "f.yaml") == {"a": [1, {"b": 2}]}


def test_cfg_rows_checked_by_arithmetic():
    cfg = load_cfg("yolov4-p5-search.yaml")
    check_cfg_rows(cfg, "base")  # the real model passes
    check_cfg_rows(cfg, "base", width=4.0, depth=4.0)
    cfg["backbone"][6][1] = 100  # a row repeated 100 times
    with pytest.raises(SizeLimitError, match="backbone row 6: number must be a positive integer of at most 64"):
        check_cfg_rows(cfg, "base")
    with pytest.raises(SizeLimitError, match="width_multiple must be a number"):
        check_cfg_rows(load_cfg("yolov4-p5.yaml"), "base", width=1e6)


def test_model_params_counted_on_the_meta_device():
    assert 150e6 < check_model_params("yolov4-p5-search.yaml", "search", width=1.0) < MAX_MODEL_PARAMS
    with pytest.raises(SizeLimitError, match=r"M parameters .* the limit is 1000 M"):
        check_model_params("yolov4-p5-search.yaml", "search", width=4.0)  # 3.2 G parameters: never allocated


def test_status_json_of_a_refused_start_stays_small(shared_stack):
    """Whatever a refused /start writes is bounded by what it quotes, not by the input."""
    write_project(shared_stack.shared, project="long_value", settings={"strategy": "x" * 100_000})
    fake_dataset(shared_stack.shared)
    assert shared_stack.call("start", project="long_value") == (400, "failed")
    state = json.loads((shared_stack.shared / "common" / USER / "long_value" / "neck_nas" / "status.json").read_text())
    assert len(state["error"]) < 400, state["error"][:500]
