"""`autonn-nas latency-table` (issue 15): a target's table measured here, through PyTorch or ONNX Runtime, read by
`search --latency-table`; a malformed or mismatched table is a one-line error that names the file."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from autonn_nas.cli import main
from autonn_nas.models.search_space import SEED_SPACE
from autonn_nas.models.yolo import build_model
from autonn_nas.search.cost import build_cost_table
from autonn_nas.search.cost.runtimes import available_runtimes

MINI = Path(__file__).resolve().parents[1] / "shared_volume" / "datasets" / "coco128_mini" / "dataset.yaml"
EXT = "yolov4-p5-search-ext.yaml"
SIZES = ["--img", "64", "--width", "0.125", "--depth", "0.33"]


@pytest.fixture(scope="module")
def ext_table(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tables") / "t.json"
    assert main(["latency-table", "-o", str(path), "--cfg", EXT, *SIZES, "--device", "cpu", "--runtime", "torch",
                 "--warmup", "1", "--repeats", "2"]) == 0
    return path


def test_the_table_holds_every_candidate_and_says_where_and_how_it_was_measured(ext_table):
    table = json.loads(ext_table.read_text())
    assert table["space"] == "extended" and len(table["candidates"]) == 12  # at depth 0.33: 6 x full or half width
    assert set(table["blocks"]) == {"m_16", "m_21", "m_25", "m_29"}
    assert all(set(entries) == set(table["candidates"]) and min(entries.values()) > 0 for entries in table["blocks"].values())
    assert table["img_size"] == 64 and table["input_shapes"]["m_21"] == [32, 8, 8]  # the model's real feature-map size
    assert table["device"].startswith("cpu") and table["runtime"].startswith("torch ") and table["date"][:2] == "20"
    assert (table["width_multiple"], table["depth_multiple"], table["repeats"]) == (0.125, 0.33, 2)


@pytest.mark.skipif("onnxruntime" not in available_runtimes(), reason="onnxruntime is the optional export extra")
def test_onnx_runtime_measures_the_exported_blocks(tmp_path, capsys):
    path = tmp_path / "ort.json"
    assert main(["latency-table", "-o", str(path), *SIZES, "--device", "cpu", "--warmup", "0", "--repeats", "1"]) == 0  # default: onnxruntime
    table = json.loads(path.read_text())
    assert table["runtime"].startswith("onnxruntime ") and table["space"] == "seed" and table["candidates"] == list(SEED_SPACE.names)
    assert "with onnxruntime" in table["source"] and "latency_tables/<target_info>.json" in capsys.readouterr().out


def test_search_reads_the_table_and_the_level_bites(ext_table, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["search", "--data", str(MINI), "--cfg", EXT, *SIZES, "--epochs", "1", "--batch", "8", "--workers", "0",
                 "--device", "cpu", "--cost-measure", "latency", "--latency-table", str(ext_table), "--lightweight-level", "10",
                 "--out", str(out), "--no-progress"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["cost_model"]["source"].startswith(f"latency table {ext_table} (cpu")  # the report says which table
    assert report["derived"]["cost_ratio"] < 1.0 and report["derived"]["cost"] == pytest.approx(report["budget"]["cheapest_cost"])
    assert f"latency table {ext_table}" in (out / "report.md").read_text()


def _search_error(table: Path, tmp_path: Path, capsys, img: str = "64") -> str:
    code = main(["search", "--data", str(MINI), "--cfg", EXT, "--img", img, "--width", "0.125", "--depth", "0.33", "--epochs", "1",
                 "--workers", "0", "--device", "cpu", "--cost-measure", "latency", "--latency-table", str(table),
                 "--out", str(tmp_path / "bad_run"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and not (tmp_path / "bad_run" / "report.json").exists()
    return err[-1]


def test_the_search_stops_with_one_line_naming_the_table(ext_table, tmp_path, capsys):
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    line = _search_error(broken, tmp_path, capsys)
    assert line.startswith("autonn-nas search: error: latency table") and str(broken) in line and "is not valid JSON" in line
    line = _search_error(ext_table, tmp_path, capsys, img="96")
    assert str(ext_table) in line and "measured at image size 64, this search runs at 96" in line


@pytest.fixture(scope="module")
def tiny_models():
    return {cfg: build_model(cfg, nc=2, width=0.125, depth=0.33) for cfg in (EXT, "yolov4-p5-search.yaml")}


@pytest.mark.parametrize("case, message", [
    ("no blocks", "expected a JSON object like"),
    ("other space", "was measured for the extended search space, this search uses the seed one"),
    ("missing candidate", "block m_21 lacks candidate(s) k3_relu_h50"),
    ("negative", "k3_relu must be milliseconds"),
    ("other width", "block m_16 was measured on 64x4x4 inputs, this model's are 128x4x4 (another width or image size)"),
])
def test_a_malformed_or_mismatched_table_names_the_file_and_the_problem(ext_table, tiny_models, tmp_path, case, message):
    table = json.loads(ext_table.read_text())
    model = tiny_models[EXT]
    if case == "other space":
        model = tiny_models["yolov4-p5-search.yaml"]
    elif case == "missing candidate":
        del table["blocks"]["m_21"]["k3_relu_h50"]
    elif case == "negative":
        table["blocks"]["m_16"]["k3_relu"] = -1
    elif case == "no blocks":
        del table["blocks"]
    elif case == "other width":
        model = build_model(EXT, nc=2, width=0.25, depth=0.33)  # the blocks' inputs differ
    path = tmp_path / "target.json"
    path.write_text(json.dumps(table))
    with pytest.raises(ValueError) as error:
        build_cost_table(model, 64, "latency", torch.device("cpu"), latency_table=path)
    assert str(path) in str(error.value) and message in str(error.value) and "\n" not in str(error.value)
