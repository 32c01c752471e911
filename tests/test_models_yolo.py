"""The YAML parser and the built detector: Scaled-YOLOv4 layout, strides, output shapes."""
import math

import pytest
import torch
import yaml

from autonn_nas.models.choice import MBottleneckCSP2, searchable_blocks
from autonn_nas.models.common import Detect
from autonn_nas.models.yolo import CONFIG_DIR, ConfigError, build_model, cfg_to_yaml, load_cfg

BASE, SEARCH = "yolov4-p5.yaml", "yolov4-p5-search.yaml"
SMALL = dict(width=0.25, depth=0.33)

# Facts read from Scaled-YOLOv4's yolov4-large branch (models/common.py, models/yolo.py) for yolov4-p5.yaml,
# nc=80: key -> shape. Layer 2 BottleneckCSP(64, 64): hidden 32, plain cv2/cv3 convs; layer 11 SPPCSP(1024, 512);
# layer 16 BottleneckCSP2(512, 256, 3): hidden 256; Detect: 4 anchors x 85 outputs per level.
SCALED_YOLOV4_KEYS = {
    "model.0.conv.weight": (32, 3, 3, 3),
    "model.0.bn.running_var": (32,),
    "model.1.conv.weight": (64, 32, 3, 3),
    "model.2.cv1.conv.weight": (32, 64, 1, 1),
    "model.2.cv2.weight": (32, 64, 1, 1),
    "model.2.cv3.weight": (32, 32, 1, 1),
    "model.2.cv4.conv.weight": (64, 64, 1, 1),
    "model.2.bn.weight": (64,),
    "model.2.m.0.cv1.conv.weight": (32, 32, 1, 1),
    "model.2.m.0.cv2.conv.weight": (32, 32, 3, 3),
    "model.10.m.6.cv2.bn.num_batches_tracked": (),
    "model.11.cv1.conv.weight": (512, 1024, 1, 1),
    "model.11.cv2.weight": (512, 1024, 1, 1),
    "model.11.cv3.conv.weight": (512, 512, 3, 3),
    "model.11.cv5.conv.weight": (512, 2048, 1, 1),
    "model.11.bn.running_mean": (1024,),
    "model.11.cv7.conv.weight": (512, 1024, 1, 1),
    "model.16.cv1.conv.weight": (256, 512, 1, 1),
    "model.16.cv2.weight": (256, 256, 1, 1),
    "model.16.cv3.conv.weight": (256, 512, 1, 1),
    "model.16.bn.bias": (512,),
    "model.16.m.2.cv2.conv.weight": (256, 256, 3, 3),
    "model.29.m.0.cv2.conv.weight": (512, 512, 3, 3),
    "model.31.anchors": (3, 4, 2),
    "model.31.anchor_grid": (3, 1, 4, 1, 1, 2),
    "model.31.m.0.weight": (340, 256, 1, 1),
    "model.31.m.0.bias": (340,),
    "model.31.m.2.weight": (340, 1024, 1, 1),
}


@pytest.fixture(scope="module")
def base_full():
    return build_model(BASE)


def test_state_dict_layout_matches_scaled_yolov4(base_full):
    sd = base_full.state_dict()
    for key, shape in SCALED_YOLOV4_KEYS.items():
        assert key in sd, key
        assert tuple(sd[key].shape) == shape, key
    # nothing of ours leaks into the checkpoint layout (strides, grids, search state)
    leaf_names = {k.split(".")[-1] for k in sd}
    assert leaf_names == {"weight", "bias", "running_mean", "running_var", "num_batches_tracked", "anchors", "anchor_grid"}
    assert not any("stride" in k or "candidates" in k for k in sd)


def test_a_scaled_yolov4_state_dict_loads_strictly(base_full):
    other = build_model(BASE, **SMALL)
    assert base_full.load_state_dict(base_full.state_dict(), strict=True)  # round trip
    with pytest.raises(RuntimeError, match="size mismatch"):
        other.load_state_dict(base_full.state_dict(), strict=True)


def test_detect_buffers_strides_and_bias_prior(base_full):
    detect = base_full.detect
    assert isinstance(detect, Detect) and (detect.nc, detect.no, detect.nl, detect.na) == (80, 85, 3, 4)
    assert detect.stride.tolist() == [8.0, 16.0, 32.0] and base_full.stride is detect.stride
    pixels = torch.tensor(load_cfg(BASE)["anchors"], dtype=torch.float32).view(3, 4, 2)
    assert torch.allclose(detect.anchors * detect.stride.view(-1, 1, 1), pixels)
    assert torch.allclose(detect.anchor_grid.view(3, 4, 2), pixels)
    for conv, s in zip(detect.m, (8, 16, 32)):
        b = conv.bias.detach().view(4, 85)
        # default init is uniform in +-1/sqrt(fan_in): the prior dominates
        bound = 1 / math.sqrt(conv.in_channels)
        assert (b[:, 4] - math.log(8 / (640 / s) ** 2)).abs().max() <= bound + 1e-6
        assert (b[:, 5:] - math.log(0.6 / (80 - 0.99))).abs().max() <= bound + 1e-6


def test_layer_attributes(base_full):
    layers = base_full.model
    assert [layer.i for layer in layers] == list(range(32))
    assert layers[15].f == [-1, -2] and layers[31].f == [22, 26, 30] and layers[14].f == 8
    assert layers[13].type == "Upsample" and layers[16].type == "BottleneckCSP2"
    assert layers[6].n == 15 and layers[6].args == [256, 256, 15]
    assert base_full.save == [6, 8, 11, 13, 16, 18, 21, 22, 25, 26, 30]
    assert all(layer.np == sum(p.numel() for p in layer.parameters()) for layer in layers)


def test_full_size_supernet_builds_without_forward():
    supernet = build_model(SEARCH)
    assert supernet.stride.tolist() == [8.0, 16.0, 32.0]
    assert list(searchable_blocks(supernet)) == ["m_16", "m_21", "m_25", "m_29"]
    assert sum(p.numel() for p in supernet.parameters()) == 201_611_612


@pytest.mark.parametrize("cfg", [BASE, SEARCH])
@pytest.mark.parametrize("width,depth", [(0.25, 0.33), (0.125, 0.2)])
@pytest.mark.parametrize("hw", [(64, 64), (96, 128)])
def test_train_and_eval_outputs(cfg, width, depth, hw):
    torch.manual_seed(0)
    model = build_model(cfg, nc=3, width=width, depth=depth)
    x = torch.rand(2, 3, *hw)
    raw = model.train()(x)
    assert [tuple(r.shape) for r in raw] == [(2, 4, hw[0] // s, hw[1] // s, 8) for s in (8, 16, 32)]
    with torch.no_grad():
        pred, raw_eval = model.eval()(x)
    n = sum(4 * (hw[0] // s) * (hw[1] // s) for s in (8, 16, 32))
    assert pred.shape == (2, n, 8) and len(raw_eval) == 3
    assert (pred[..., 4:] >= 0).all() and (pred[..., 4:] <= 1).all()  # sigmoid objectness and classes
    # xy decodes to pixels inside (a little beyond) the image
    assert pred[..., 0].max() < hw[1] + 32 and pred[..., 1].max() < hw[0] + 32


def test_eval_decoding_matches_yolov5_formula():
    model = build_model(BASE, nc=2, width=0.125, depth=0.2).eval()
    with torch.no_grad():
        pred, raw = model(torch.rand(1, 3, 64, 64))
    d = model.detect
    level, a, gy, gx = 1, 2, 1, 0  # P4: 4x4 grid
    p = raw[level][0, a, gy, gx].sigmoid()
    stride = 16
    xy = (p[:2] * 2 - 0.5 + torch.tensor([gx, gy])) * stride
    wh = (p[2:4] * 2) ** 2 * d.anchors[level, a] * stride
    offset = 4 * 8 * 8  # P3 rows come first
    row = pred[0, offset + (a * 4 + gy) * 4 + gx]
    assert torch.allclose(row[:2], xy) and torch.allclose(row[2:4], wh) and torch.allclose(row[4:], p[4:])


@pytest.mark.parametrize("width,depth,channels,repeats", [(1.0, 1.0, 256, 3), (0.5, 0.33, 128, 1), (0.25, 0.67, 64, 2)])
def test_width_depth_multiples(width, depth, channels, repeats):
    with torch.device("meta"):
        model = build_model(SEARCH, width=width, depth=depth)
    block = model.model[16]
    assert block.args[1] == channels and block.n == repeats
    assert len(block.candidates["k5_mish"].m) == repeats
    assert model.detect.m[0].in_channels == math.ceil(256 * width / 8) * 8
    assert model.yaml["width_multiple"] == width and model.yaml["depth_multiple"] == depth


def test_nc_override_and_model_yaml():
    model = build_model(BASE, nc=7, **SMALL)
    assert model.detect.nc == 7 and model.nc == 7 and model.yaml["nc"] == 7 and len(model.names) == 7
    assert load_cfg(BASE)["nc"] == 80  # the built-in file is untouched


def test_load_cfg_accepts_path_name_and_dict(tmp_path):
    by_name = load_cfg(BASE)
    assert load_cfg("yolov4-p5") == by_name == load_cfg(CONFIG_DIR / BASE)
    cfg = load_cfg(by_name)
    cfg["nc"] = 3
    assert by_name["nc"] == 80  # a dict is deep-copied
    path = tmp_path / "m.yaml"
    path.write_text(cfg_to_yaml(by_name))
    assert load_cfg(path) == by_name and yaml.safe_load(cfg_to_yaml(by_name)) == by_name


def test_base_and_search_configs_differ_only_in_the_searchable_rows():
    base, search = load_cfg(BASE), load_cfg(SEARCH)
    assert base["backbone"] == search["backbone"] and base["anchors"] == search["anchors"]
    diffs = [i for i, (a, b) in enumerate(zip(base["head"], search["head"])) if a != b]
    assert [11 + i for i in diffs] == [16, 21, 25, 29]
    assert all(search["head"][i][2] == "MBottleneckCSP2" for i in diffs)
    assert base["head"][5] == [-1, 3, "BottleneckCSP2", [256]]


def _bad(cfg_edit):
    cfg = load_cfg(BASE)
    cfg_edit(cfg)
    return cfg


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda c: c["head"].__setitem__(1, [-1, 1, "Conv3", [256, 1, 1]]), r"head row 1 \(layer 12\): unknown module 'Conv3'; valid modules: Conv, nn.Conv2d"),
        (lambda c: c["head"].__setitem__(4, [[-1, 40], 1, "Concat", [1]]), r"layer 15.*'from' index 40"),
        (lambda c: c["head"].__setitem__(4, [[-1, 6], 1, "Concat", [1]]), r"layer 15.*different strides"),
        (lambda c: c["backbone"].__setitem__(0, [-1, 0, "Conv", [32, 3, 1]]), r"backbone row 0.*positive integer"),
        (lambda c: c.pop("anchors"), r"missing key\(s\) anchors"),
        (lambda c: c["head"].pop(), r"last row must be a Detect"),
    ],
)
def test_config_errors_name_the_row_and_valid_values(edit, message):
    with pytest.raises(ConfigError, match=message):
        build_model(_bad(edit))


def test_unknown_config_name_lists_builtins():
    with pytest.raises(ConfigError, match="yolov4-p5-search.yaml, yolov4-p5.yaml"):
        load_cfg("yolov4-p7.yaml")


def test_searchable_blocks_are_choice_blocks_labelled_by_layer():
    model = build_model(SEARCH, **SMALL)
    blocks = searchable_blocks(model)
    assert all(isinstance(b, MBottleneckCSP2) and label == f"m_{b.i}" for label, b in blocks.items())
    assert searchable_blocks(build_model(BASE, **SMALL)) == {}
