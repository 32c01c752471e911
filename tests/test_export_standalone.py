"""The stage's hand-off: exports chosen by the project's engine, neural_net_info keys, and the network
rebuilt from the project folder alone in a Python process where autonn_nas cannot be imported."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from autonn_nas.export.images import image_batch
from autonn_nas.service.handoff import ENGINE_FORMATS, export_for_engine, export_formats, neural_net_info, place_outputs
from autonn_nas.service.paths import ProjectPaths
from autonn_nas.train.checkpoint import load_checkpoint, model_from_checkpoint
from test_export_support import NAMES, VAL_IMAGES, make_bestmodel

IMG = 64
REBUILD_SCRIPT = textwrap.dedent('''
    import importlib, os, sys
    project, input_path, output_path, *site_dirs = sys.argv[1:]
    sys.path[:0] = site_dirs  # third-party packages only (torch, numpy, yaml); no site, no .pth, no editable installs
    try:
        import autonn_nas
    except ModuleNotFoundError:
        pass
    else:
        raise SystemExit(f"autonn_nas is importable from {autonn_nas.__file__}: the check would prove nothing")
    import numpy as np, torch, yaml
    info = yaml.safe_load(open(f"{project}/neural_net_info.yaml"))
    # as TANGO's code generator does: base_dir_autonn on the path, the module of class_file[0], class_name's
    # callable with its cfg, and the weight_file entry with .pt
    sys.path.insert(0, os.path.normpath(f"{project}/{info['base_dir_autonn']}"))
    module = importlib.import_module(info["class_file"][0].removesuffix(".py").replace("/", "."))
    name, argument = info["class_name"].split("(", 1)
    cfg = argument.split(")")[0].split("=")[1][1:-1]
    model = getattr(module, name)(cfg=f"{project}/{cfg}")
    pt_file = next(w for w in info["weight_file"] if ".pt" in w)
    model.load_state_dict(torch.load(f"{project}/{pt_file}", map_location="cpu", weights_only=True)["state_dict"])
    model.eval()
    with torch.no_grad():
        pred, raw = model(torch.from_numpy(np.load(input_path)))
    np.save(output_path, pred.numpy())
    print("built from", module.__file__)
''')


@pytest.mark.parametrize("engine, formats", [("pytorch", ("torchscript",)), ("PyTorch", ("torchscript",)), ("tensorrt", ("onnx",)),
                                             ("tflite", ("onnx",)), ("rknn", ("onnx",)), ("", ()), (None, ()), ("cuda", ())])
def test_engine_table(engine, formats):
    assert export_formats(engine) == formats
    assert set(ENGINE_FORMATS.values()) == {("onnx",), ("torchscript",)}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A project folder as a completed job leaves it, for an engine that takes ONNX plus one that takes TorchScript."""
    shared = tmp_path_factory.mktemp("shared")
    paths = ProjectPaths.of(shared, "u1", "p1")
    model_yaml, weights = make_bestmodel(paths.run_dir, img_size=IMG)
    exports, skipped = export_for_engine(weights, "tensorrt", IMG, paths.run_dir, check_images=VAL_IMAGES)
    more, _ = export_for_engine(weights, "pytorch", IMG, paths.run_dir, check_images=VAL_IMAGES)
    exports.update(more)
    assert not skipped
    info = neural_net_info(model_yaml, IMG, NAMES, exports, skipped)
    outputs = place_outputs(paths, model_yaml, weights, info, [e.path for e in exports.values()])
    return paths, outputs, weights


def test_outputs_and_info_keys(project):
    paths, outputs, _weights = project
    assert set(outputs) == {"neck_nas_model.yaml", "bestmodel.pt", "neural_net_info.yaml", "bestmodel.onnx",
                            "bestmodel.torchscript", "neck_nas_models"}
    info = yaml.safe_load((paths.project_dir / "neural_net_info.yaml").read_text())
    assert (info["weight_file"], info["config_file"], info["class_file"][0], info["class_name"], info["base_dir_autonn"]) == (
        ["bestmodel.pt", "bestmodel.torchscript", "bestmodel.onnx"], "neck_nas_model.yaml", "neck_nas_models/yolo.py",
        "build_model(cfg='neck_nas_model.yaml')", ".")
    assert sorted(info["class_file"]) == info["model_files"]
    assert (info["onnx_file"], info["torchscript_file"]) == ("bestmodel.onnx", "bestmodel.torchscript")
    assert info["output_pred_format"] == ["x", "y", "w", "h", "confidence", "probability_of_classes"]
    assert info["input_data_type"] == "fp32" and "precision_note" not in info
    for name in [*info["class_file"], *info["weight_file"]]:
        assert (paths.project_dir / name).is_file(), name
    boxes = 4 * sum((IMG // s) ** 2 for s in (8, 16, 32))
    for fmt in ("onnx", "torchscript"):
        entry = info["exports"][fmt]
        assert entry["output_shape"] == [1, boxes, 85] and entry["input_tensor_shape"] == [1, 3, IMG, IMG] and entry["bn_folded"] and "CSP" in entry["bn_kept"]
        assert entry["max_abs_diff_vs_pytorch"]["boxes_px"] < 1e-4 * IMG and entry["max_abs_diff_vs_pytorch"]["images"] == 4
    assert info["exports"]["onnx"]["opset"] == 17
    placed = (paths.project_dir / "neck_nas_models").glob("*.py")
    assert not [p.name for p in placed if "autonn_nas" in p.read_text()]  # nothing reaches back into the package


def test_failed_job_removes_every_output(tmp_path):
    paths = ProjectPaths.of(tmp_path, "u2", "p2")
    model_yaml, weights = make_bestmodel(paths.run_dir, img_size=IMG)
    place_outputs(paths, model_yaml, weights, {"weight_file": "bestmodel.pt"}, [])
    assert "neck_nas_models" in paths.outputs()
    paths.remove_outputs()
    assert paths.outputs() == {} and not (paths.project_dir / "neck_nas_models").exists()


def _site_dirs() -> list[str]:
    return sorted({str(Path(m.__file__).resolve().parent.parent) for m in (torch, np, yaml)})


def test_rebuild_from_project_folder_alone(project, tmp_path):
    paths, _outputs, weights = project
    images = image_batch(VAL_IMAGES[:2], IMG).numpy()
    np.save(tmp_path / "input.npy", images)
    script = tmp_path / "rebuild.py"
    script.write_text(REBUILD_SCRIPT)
    empty = tmp_path / "cwd"
    empty.mkdir()
    done = subprocess.run([sys.executable, "-I", "-S", str(script), str(paths.project_dir), str(tmp_path / "input.npy"),
                           str(tmp_path / "output.npy"), *_site_dirs()], cwd=empty, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"built from {paths.project_dir / 'neck_nas_models' / 'yolo.py'}" in done.stdout

    model = model_from_checkpoint(load_checkpoint(weights))
    with torch.no_grad():
        expected = model(torch.from_numpy(images))[0].numpy()
    got = np.load(tmp_path / "output.npy")
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_rebuild_check_notices_an_importable_autonn_nas(project, tmp_path):
    """The subprocess really cannot import autonn_nas: handing it the repository makes the script refuse."""
    paths, _outputs, _weights = project
    script = tmp_path / "rebuild.py"
    script.write_text(REBUILD_SCRIPT)
    repo = str(Path(__file__).resolve().parent.parent)
    done = subprocess.run([sys.executable, "-I", "-S", str(script), str(paths.project_dir), "x.npy", "y.npy", repo, *_site_dirs()],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "autonn_nas is importable" in done.stderr


def test_an_fp16_export_that_disagrees_with_pytorch_is_handed_off_in_fp32_and_says_why(tmp_path, monkeypatch):
    """On a GPU (an H200, benchmarks/README.md) a barely trained network's fp16 boxes moved by over 1000 px from
    fp32, so its fp16 export cannot pass the check; the stage must then hand off fp32 exports, not fail the job.
    No CUDA here: the fp16 attempt is the boundary stood in for (it disagrees, as it did there); the fp32 exports
    that follow are real and checked against PyTorch."""
    from autonn_nas.export import exporter
    from autonn_nas.service import handoff

    real_export = exporter.export_weights
    attempts = []

    def export_on_a_gpu(weights, fmt, *, half=False, **kwargs):
        attempts.append((fmt, half, kwargs["device"]))
        if half:
            raise exporter.ExportMismatch(f"{fmt} export does not reproduce PyTorch (boxes 2.14e+03 px -> TOO LARGE)")
        return real_export(weights, fmt, half=False, **kwargs)

    monkeypatch.setattr(handoff, "export_device", lambda half: ("cuda", None))
    monkeypatch.setattr(exporter, "export_weights", export_on_a_gpu)
    paths = ProjectPaths.of(tmp_path, "u1", "p1")
    model_yaml, weights = make_bestmodel(paths.run_dir, img_size=IMG)
    exports, skipped = export_for_engine(weights, "tensorrt", IMG, paths.run_dir, check_images=VAL_IMAGES, layout="yolov9", half=True)
    assert attempts[0] == ("torchscript", True, "cuda") and [a[1] for a in attempts[1:]] == [False, False]
    assert set(exports) == {"torchscript", "onnx"} and not skipped
    assert all(not e.half and e.agreement.ok and e.path.is_file() for e in exports.values())
    info = neural_net_info(model_yaml, IMG, NAMES, exports, skipped, layout="yolov9")
    assert info["input_data_type"] == "fp32"
    assert "fp16 export did not reproduce the PyTorch model" in info["precision_note"] and "2.14e+03 px" in info["precision_note"]
