"""Starting a model from weights (train/weights.py, search/weights_file.py), on tiny models built here: every kind
of file is read into the weights of the model it belongs to, a checkpoint of another nc or architecture loads
what fits and says per layer what it skipped, and --strict refuses it in one line naming the tensor."""
from __future__ import annotations

import json
import logging

import pytest
import torch

from autonn_nas.models.choice import searchable_blocks, set_architecture
from autonn_nas.models.yolo import Model, build_model
from autonn_nas.search.derive import derive_yaml
from autonn_nas.search.weights_file import read_weights
from autonn_nas.train.weights import load_fitting

SIZES = dict(width=0.125, depth=0.33)
K5_NECK = {"m_16": "k5_leaky", "m_21": "k3_mish", "m_25": "k3_mish", "m_29": "k3_mish"}
BASE = {label: "k3_mish" for label in K5_NECK}


def _randomised_bn(model: torch.nn.Module) -> torch.nn.Module:
    """Non-trivial BN statistics, so a wrong copy shows in the outputs."""
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def _derived(arch: dict, nc: int = 80) -> Model:
    supernet = build_model("yolov4-p5-search.yaml", nc=nc, **SIZES)
    return build_model(derive_yaml(supernet.yaml, arch), nc=nc)


def _same_outputs(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return torch.allclose(a.eval()(x)[0], b.eval()(x)[0], atol=1e-5)


def test_a_state_dict_plain_or_under_model_loads_into_the_model_of_cfg(tmp_path):
    torch.manual_seed(0)
    source = _randomised_bn(build_model("yolov4-p5.yaml", nc=80, **SIZES))
    for name, saved in (("plain.pt", source.state_dict()), ("wrapped.pt", {"model": source.state_dict(), "epoch": 3})):
        torch.save(saved, tmp_path / name)
        weights = read_weights(tmp_path / name)
        assert weights.kind == "state_dict" and weights.model_yaml is None
        model = build_model("yolov4-p5.yaml", nc=80, **SIZES)
        summary = load_fitting(model, weights)
        assert summary.loaded == summary.total and not summary.skipped
        assert _same_outputs(model, source)


def test_a_bestmodel_and_a_train_checkpoint_carry_their_own_model(tmp_path):
    torch.manual_seed(1)
    derived = _randomised_bn(_derived(K5_NECK))
    torch.save({"model_yaml": derived.yaml, "state_dict": derived.state_dict(), "nc": 80, "names": ["x"] * 80,
                "arch": K5_NECK, "img_size": 64}, tmp_path / "bestmodel.pt")
    torch.save({"model_yaml": derived.yaml, "state_dict": derived.state_dict(), "nc": 80, "epoch": 4,
                "settings": {"img_size": 96}, "train_state_dict": derived.state_dict()}, tmp_path / "best.pt")
    for name, kind, size in (("bestmodel.pt", "derived", 64), ("best.pt", "trained", 96)):
        weights = read_weights(tmp_path / name)
        assert (weights.kind, weights.img_size) == (kind, size)
        assert weights.arch == (K5_NECK if kind == "derived" else None)
        model = build_model(weights.model_yaml, nc=80)
        assert load_fitting(model, weights).skipped == ()
        assert _same_outputs(model, derived)


def test_a_search_checkpoint_gives_the_sub_network_of_its_moving_average(tmp_path):
    torch.manual_seed(2)
    supernet = _randomised_bn(build_model("yolov4-p5-search.yaml", nc=80, **SIZES))
    average = {k: v + 0.01 if v.is_floating_point() else v for k, v in supernet.state_dict().items()}
    torch.save({"model_yaml": supernet.yaml, "state_dict": supernet.state_dict(), "nc": 80, "settings": {"img_size": 64},
                "ema": {"updates": 5, "decay": 0.9999, "tau": 2000.0, "state_dict": average}}, tmp_path / "last.pt")
    with pytest.raises(ValueError, match=r"arch.json does not exist: give the sub-network to take with --arch"):
        read_weights(tmp_path / "last.pt")
    (tmp_path / "arch.json").write_text(json.dumps({"architecture": K5_NECK, "shipped": "derived"}))  # as a search writes it
    (tmp_path / "other.json").write_text(json.dumps(BASE))
    supernet.load_state_dict(average)
    for arch, expected in ((None, K5_NECK), (tmp_path / "other.json", BASE), (BASE, BASE)):
        weights = read_weights(tmp_path / "last.pt", arch=arch)
        assert weights.kind == "supernet" and weights.arch == expected and weights.img_size == 64
        model = build_model(weights.model_yaml, nc=80)
        assert not searchable_blocks(model) and load_fitting(model, weights, strict=True).skipped == ()
        set_architecture(supernet, expected)
        assert _same_outputs(model, supernet), arch


def test_another_nc_loads_all_but_the_detect_layer_and_says_so(tmp_path, caplog):
    torch.manual_seed(3)
    source = _randomised_bn(_derived(BASE, nc=80))
    torch.save({"model_yaml": source.yaml, "state_dict": source.state_dict(), "arch": BASE}, tmp_path / "bestmodel.pt")
    weights = read_weights(tmp_path / "bestmodel.pt")
    model = build_model(weights.model_yaml, nc=3)
    detect = len(model.model) - 1
    with caplog.at_level(logging.INFO, logger="autonn_nas"):
        summary = load_fitting(model, weights)
    # 4 anchors x (5 + nc) outputs per level: 340 for COCO's 80 classes, 32 for 3; the weights and biases of 3 levels
    assert summary.skipped == (f"layer {detect} (Detect): 6 tensor(s) shape differs, not loaded (e.g. model.{detect}.m.0.weight: "
                               "shape (340, 32, 1, 1) in the weights, (32, 32, 1, 1) in the model)",)
    assert summary.loaded == summary.total - 6
    assert f"layer {detect} (Detect): 6 tensor(s) shape differs" in caplog.text
    own = model.state_dict()
    assert all(torch.equal(own[k], v) for k, v in source.state_dict().items() if not k.startswith(f"model.{detect}."))


def test_another_architecture_skips_the_blocks_that_differ_and_strict_names_the_first_tensor(tmp_path):
    torch.manual_seed(4)
    source = _derived(K5_NECK)
    torch.save({"model_yaml": source.yaml, "state_dict": source.state_dict(), "arch": K5_NECK}, tmp_path / "bestmodel.pt")
    weights = read_weights(tmp_path / "bestmodel.pt")
    summary = load_fitting(build_model("yolov4-p5.yaml", nc=80, **SIZES), weights)
    assert len(summary.skipped) == 1 and summary.skipped[0].startswith("layer 16 (BottleneckCSP2): ")
    assert "shape (32, 32, 5, 5) in the weights, (32, 32, 3, 3) in the model" in summary.skipped[0]
    with pytest.raises(ValueError) as error:
        load_fitting(build_model("yolov4-p5.yaml", nc=80, **SIZES), weights, strict=True)
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{tmp_path / 'bestmodel.pt'}: model.16.m.0.cv2.conv.weight does not fit")
    assert "without --strict the tensors that fit are loaded" in message


def test_weights_that_fit_nothing_or_hold_none_are_refused(tmp_path):
    torch.save(torch.nn.Linear(4, 2).state_dict(), tmp_path / "classifier.pt")  # weights of another network altogether
    with pytest.raises(ValueError, match=r"no tensor fits this model \(the first: model.0.conv.weight, missing in the weights\)"):
        load_fitting(build_model("yolov4-p5.yaml", nc=80, **SIZES), read_weights(tmp_path / "classifier.pt"))
    torch.save({"epoch": 3}, tmp_path / "empty.pt")
    with pytest.raises(ValueError, match="holds no weights"):
        read_weights(tmp_path / "empty.pt")
    (tmp_path / "pickled.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="cannot be read safely as tensors.*'Starting from weights'"):
        read_weights(tmp_path / "pickled.pt")
