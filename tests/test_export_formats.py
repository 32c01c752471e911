"""ONNX and TorchScript export: BN folding, the decoded output only, agreement with PyTorch on real images,
dynamic shapes, the CLI's printed difference, and the errors a user can act on."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from autonn_nas.cli import main
from autonn_nas.export.dependencies import INSTALL_HINT, MissingDependencyError
from autonn_nas.export.exporter import export_weights
from autonn_nas.export.fuse import count_batch_norms, fuse_conv_bn
from autonn_nas.export.images import image_batch
from autonn_nas.export.onnx import onnx_session, run_onnx
from autonn_nas.export.torchscript import load_torchscript
from autonn_nas.export.verify import compare
from autonn_nas.models.common import Conv
from autonn_nas.models.yolo import build_model
from autonn_nas.utils.files import atomic_torch_save
from test_export_support import EXPORT_IMG, VAL_IMAGES, make_bestmodel

IMG = EXPORT_IMG  # the size of the `weights` fixture (conftest.py)
FORMATS = ["onnx", "torchscript"]


def _pytorch(model, images):
    with torch.no_grad():
        return model(images)[0]


def test_fusing_folds_every_conv_bn_and_keeps_the_output(model):
    fused = fuse_conv_bn(model)
    convs = sum(isinstance(m, Conv) for m in model.modules())
    assert convs > 0 and count_batch_norms(fused) == count_batch_norms(model) - convs  # only the CSP blocks' BN stay
    assert count_batch_norms(model) > convs  # the original is untouched
    images = image_batch(VAL_IMAGES[:2], IMG)
    agreement = compare(_pytorch(model, images), _pytorch(fused, images), IMG, "fp32", "images")
    assert agreement.ok and agreement.box_px < 1e-3, agreement.describe()


@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_export_matches_pytorch_on_real_images(weights, model, fmt, dynamic, tmp_path):
    out = tmp_path / f"m.{fmt}"
    result = export_weights(weights, fmt, dynamic=dynamic, out=out, device="cpu", check_images=VAL_IMAGES[:3])
    assert result.path == out and out.is_file() and result.img_size == IMG  # img from the checkpoint
    assert result.agreement.ok and result.agreement.images == 3 and result.agreement.source == "images"
    assert result.agreement.box_px < 1e-4 * IMG and result.agreement.score < 1e-4, result.agreement.describe()

    # independently of the exporter's own check: load the file and compare the decoded prediction
    images = image_batch(VAL_IMAGES[3:5], IMG)
    expected = _pytorch(model, images).numpy()
    if fmt == "onnx":
        session = onnx_session(out)
        assert [o.name for o in session.get_outputs()] == ["output"]  # the decoded prediction only, no raw maps
        got = np.concatenate([run_onnx(session, images[i:i + 1].numpy()) for i in range(2)])
    else:
        module, meta = load_torchscript(out)
        assert meta["nc"] == 80 and meta["stride"] == [8, 16, 32]
        with torch.no_grad():
            got = module(images).numpy()
    assert got.shape == expected.shape == (2, 4 * sum((IMG // s) ** 2 for s in (8, 16, 32)), 85)  # 4 anchors per cell
    np.testing.assert_allclose(got[..., :4], expected[..., :4], atol=1e-4 * IMG, rtol=0)
    np.testing.assert_allclose(got[..., 4:], expected[..., 4:], atol=1e-4, rtol=0)


def test_dynamic_onnx_runs_other_batch_and_sizes(weights, model, tmp_path):
    out = export_weights(weights, "onnx", dynamic=True, out=tmp_path / "d.onnx", device="cpu").path
    session = onnx_session(out)
    for size, batch in ((64, 3), (128, 2)):
        images = image_batch(VAL_IMAGES[:batch], size)
        got = run_onnx(session, images.numpy())
        agreement = compare(_pytorch(model, images), got, size, "fp32", "images")
        assert got.shape[0] == batch and agreement.ok, agreement.describe()


def test_torchscript_trace_runs_other_batch_and_sizes(weights, model, tmp_path):
    module, _meta = load_torchscript(export_weights(weights, "torchscript", out=tmp_path / "t.torchscript", device="cpu").path)
    for size, batch in ((64, 3), (128, 2)):
        images = image_batch(VAL_IMAGES[:batch], size)
        with torch.no_grad():
            agreement = compare(_pytorch(model, images), module(images), size, "fp32", "images")
        assert agreement.images == batch and agreement.ok, agreement.describe()


def test_static_onnx_has_fixed_input(weights, tmp_path):
    session = onnx_session(export_weights(weights, "onnx", out=tmp_path / "s.onnx", device="cpu").path)
    assert session.get_inputs()[0].shape == [1, 3, IMG, IMG]


@pytest.mark.parametrize("fmt", FORMATS)
def test_cli_writes_next_to_weights_and_prints_the_difference(tmp_path, fmt, capsys):
    _yaml, weights = make_bestmodel(tmp_path, img_size=64)
    assert main(["export", "--weights", str(weights), "--format", fmt, "--img", "64", "--device", "cpu",
                 "--check-images", str(VAL_IMAGES[0]), str(VAL_IMAGES[1])]) == 0
    out = capsys.readouterr().out
    expected_file = tmp_path / f"bestmodel.{fmt}"
    assert expected_file.is_file() and str(expected_file) in out
    assert "max difference vs PyTorch on 2 images: boxes" in out and "-> OK" in out


def test_verification_flags_a_wrong_export():
    reference = torch.zeros(1, 10, 85)
    wrong = reference.clone()
    wrong[0, 3, 0] += 0.2  # 0.2 px off a small box at 96 px
    assert not compare(reference, wrong, IMG, "fp32", "images").ok
    large = reference.clone()
    large[0, 3, 2] = 3000.0  # a wide box: the same 0.2 px is within fp32's reach there
    shifted = large.clone()
    shifted[0, 3, 2] += 0.2
    assert compare(large, shifted, IMG, "fp32", "images").ok
    wrong = reference.clone()
    wrong[0, 3, 10] += 2e-3
    assert not compare(reference, wrong, IMG, "fp32", "images").ok


@pytest.mark.skipif(torch.cuda.is_available(), reason="the error is for machines without CUDA")
def test_half_needs_cuda(weights, capsys):
    assert main(["export", "--weights", str(weights), "--format", "onnx", "--half"]) == 2
    assert "--half" in capsys.readouterr().err


def test_wrong_img_size_and_supernet_are_user_errors(weights, tmp_path, capsys):
    assert main(["export", "--weights", str(weights), "--format", "onnx", "--img", "100", "--device", "cpu"]) == 2
    assert "multiple of 32 (the largest stride), got 100; use 96 or 128" in capsys.readouterr().err
    supernet = build_model("yolov4-p5-search.yaml", nc=80, width=0.125, depth=0.33)
    path = atomic_torch_save(tmp_path / "last.pt", {"model_yaml": supernet.yaml, "state_dict": supernet.state_dict(), "nc": 80})
    assert main(["export", "--weights", str(path), "--format", "torchscript", "--device", "cpu"]) == 2
    assert "supernet" in capsys.readouterr().err


def test_missing_onnx_names_the_extra(weights, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    with pytest.raises(MissingDependencyError, match=r"export extra: pip install -c constraints.txt -e '\.\[export\]'"):
        export_weights(weights, "onnx", out=tmp_path / "x.onnx", device="cpu")
    assert main(["export", "--weights", str(weights), "--format", "onnx", "--device", "cpu", "-o", str(tmp_path / "y.onnx")]) == 2
    assert INSTALL_HINT in capsys.readouterr().err and not (tmp_path / "y.onnx").exists()
