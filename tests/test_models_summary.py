"""`autonn-nas summary`: the per-layer table against the seed document's, totals and GFLOPs."""
import json

import pytest
import torch

from autonn_nas.cli import main
from autonn_nas.models.choice import set_architecture
from autonn_nas.models.search_space import CANDIDATES
from autonn_nas.models.summary import count_gflops, format_summary, round_img_size, summarize
from autonn_nas.models.yolo import build_model

# The seed document's model summary of the search YAML at nc=80 (search-space.md): params, module, arguments.
SEED_TABLE = [
    (928, "Conv", [3, 32, 3, 1]),
    (18560, "Conv", [32, 64, 3, 2]),
    (19904, "BottleneckCSP", [64, 64, 1]),
    (73984, "Conv", [64, 128, 3, 2]),
    (161152, "BottleneckCSP", [128, 128, 3]),
    (295424, "Conv", [128, 256, 3, 2]),
    (2614016, "BottleneckCSP", [256, 256, 15]),
    (1180672, "Conv", [256, 512, 3, 2]),
    (10438144, "BottleneckCSP", [512, 512, 15]),
    (4720640, "Conv", [512, 1024, 3, 2]),
    (20728832, "BottleneckCSP", [1024, 1024, 7]),
    (7610368, "SPPCSP", [1024, 512, 1]),
    (131584, "Conv", [512, 256, 1, 1]),
    (0, "Upsample", [None, 2, "nearest"]),
    (131584, "Conv", [512, 256, 1, 1]),
    (0, "Concat", [1]),
    (23230464, "MBottleneckCSP2", [512, 256, 3]),
    (33024, "Conv", [256, 128, 1, 1]),
    (0, "Upsample", [None, 2, "nearest"]),
    (33024, "Conv", [256, 128, 1, 1]),
    (0, "Concat", [1]),
    (5815296, "MBottleneckCSP2", [256, 128, 3]),
    (295424, "Conv", [128, 256, 3, 1]),
    (295424, "Conv", [128, 256, 3, 2]),
    (0, "Concat", [1]),
    (23230464, "MBottleneckCSP2", [512, 256, 3]),
    (1180672, "Conv", [256, 512, 3, 1]),
    (1180672, "Conv", [256, 512, 3, 2]),
    (0, "Concat", [1]),
    (92860416, "MBottleneckCSP2", [1024, 512, 3]),
    (4720640, "Conv", [512, 1024, 3, 1]),
    (610300, "Detect", [80, "anchors", [256, 512, 1024]]),
]
CANDIDATE_3X3 = {16: 2_298_880, 21: 576_000, 25: 2_298_880, 29: 9_185_280}


def _meta_model(cfg, **kw):
    # Full size, shape only: summaries count parameters and FLOPs without allocating 800 MB.
    with torch.device("meta"):
        return build_model(cfg, **kw)


@pytest.fixture(scope="module")
def supernet_summary():
    return summarize(_meta_model("yolov4-p5-search.yaml", nc=80), 640)


@pytest.fixture(scope="module")
def base_summary():
    return summarize(_meta_model("yolov4-p5.yaml"), 640)


def test_supernet_rows_equal_the_seed_table(supernet_summary):
    assert len(supernet_summary.rows) == len(SEED_TABLE)
    for row, (params, module, args) in zip(supernet_summary.rows, SEED_TABLE):
        assert (row.params, row.module) == (params, module), row.index
        if module == "Detect":
            assert row.arguments[0] == 80 and row.arguments[2] == args[2]
        else:
            assert row.arguments == args, row.index
    assert supernet_summary.params == 201_611_612
    assert supernet_summary.active_params == 70_834_012


def test_base_model_rows(base_summary):
    assert base_summary.params == 70_834_012 == base_summary.active_params
    for row, (params, module, args) in zip(base_summary.rows, SEED_TABLE):
        if module == "MBottleneckCSP2":
            assert (row.params, row.module, row.arguments) == (CANDIDATE_3X3[row.index], "BottleneckCSP2", args)
        else:
            assert row.params == params


def test_gflops_of_base_and_of_the_active_path(base_summary, supernet_summary):
    # YOLOv4-P5 is about 166 GFLOPs at 640; the supernet reports its active path (base candidates)
    assert 160 < base_summary.gflops < 172
    assert supernet_summary.gflops == pytest.approx(base_summary.gflops, rel=1e-9)
    supernet = _meta_model("yolov4-p5-search.yaml")
    set_architecture(supernet, {label: "k5_mish" for label in ("m_16", "m_21", "m_25", "m_29")})
    extra = count_gflops(supernet, 640) - base_summary.gflops
    assert 35 < extra < 45  # search-space.md: all-5x5 adds about 40 GFLOPs


def test_gflops_scale_with_image_area():
    model = _meta_model("yolov4-p5.yaml", width=0.25, depth=0.33)
    assert count_gflops(model, 640) == pytest.approx(4 * count_gflops(model, 320), rel=1e-6)


def test_img_size_is_rounded_to_the_largest_stride():
    assert round_img_size(100, 32) == 128 and round_img_size(640, 32) == 640 and round_img_size(1, 32) == 32


def test_table_footer_says_what_a_supernet_counts(supernet_summary, base_summary):
    text = format_summary(supernet_summary)
    assert "201,611,612 parameters" in text and "166." in text and "active candidates" in text
    assert "m_16=k3_mish" in text
    assert "supernet" not in format_summary(base_summary)
    assert text.splitlines()[0].split() == ["from", "n", "params", "module", "arguments"]


def test_summary_cli_json(capsys):
    assert main(["summary", "yolov4-p5-search.yaml", "--nc", "3", "--img", "64", "--width", "0.25", "--depth", "0.33", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["img_size"] == 64 and len(data["rows"]) == 32 and data["rows"][31]["arguments"][0] == 3
    assert data["rows"][16]["from"] == -1 and set(data["searchable"]) == {"m_16", "m_21", "m_25", "m_29"}
    assert data["params"] > data["active_params"] > 0


def test_summary_cli_with_architecture_and_errors(tmp_path, capsys):
    arch = tmp_path / "arch.json"
    arch.write_text(json.dumps({"m_16": "k5_relu", "m_21": "k3_leaky", "m_25": "k3_mish", "m_29": "k5_mish"}))
    assert main(["summary", "yolov4-p5-search.yaml", "--arch", str(arch), "--width", "0.25", "--depth", "0.33", "--img", "64"]) == 0
    assert "m_16=k5_relu m_21=k3_leaky" in capsys.readouterr().out
    assert main(["summary", "no-such.yaml"]) == 2
    assert "built-in configs" in capsys.readouterr().err


@pytest.mark.parametrize("name", CANDIDATES)
def test_active_params_follow_the_candidate(name):
    model = _meta_model("yolov4-p5-search.yaml")
    set_architecture(model, {label: name for label in ("m_16", "m_21", "m_25", "m_29")})
    per_block = sum(p.numel() for b in (16, 21, 25, 29) for p in model.model[b].candidates[name].parameters())
    expected = 70_834_012 - sum(CANDIDATE_3X3.values()) + per_block
    assert summarize(model, 64).active_params == expected
