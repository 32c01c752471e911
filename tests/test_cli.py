"""The command line as a YOLO user meets it: --help and --version at once (torch is not imported for them), one
error format for every command, and run folders (runs/<kind>/exp, exp2, ... and reused folders that never mix)."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from autonn_nas.cli import COMMANDS, build_parser, main
from autonn_nas.commands.search import settings_from_args
from autonn_nas.utils.run_folder import clear_previous_run, latest_run_folder, next_run_folder

DATA = Path(__file__).resolve().parents[1] / "shared_volume" / "datasets" / "coco128_mini" / "dataset.yaml"


def test_help_and_version_answer_without_importing_torch():
    code = ("import contextlib, io, json, sys\n"
            "from autonn_nas.cli import COMMANDS, main\n"
            "out = io.StringIO()\n"
            "with contextlib.redirect_stdout(out):\n"
            "    codes = [main(['--version']), main(['--help'])] + [main([name, '--help']) for name in COMMANDS]\n"
            "print(json.dumps({'codes': codes, 'torch': 'torch' in sys.modules, 'first': out.getvalue().splitlines()[0]}))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    seen = json.loads(done.stdout)
    assert seen["codes"] == [0] * (2 + len(COMMANDS))
    assert seen["torch"] is False, "torch was imported for --help/--version"
    assert seen["first"] == "autonn-nas 0.1.0"


def _one_error_line(capsys, command: str) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, f"expected one error line, got:\n{captured.err}"
    assert lines[0].startswith(f"autonn-nas {command}: error: ") and lines[0].count("autonn-nas") <= 2, lines[0]
    assert "Traceback" not in captured.err and "{" not in lines[0], lines[0]  # no settings dict before the error
    return lines[0]


def test_an_image_size_off_the_stride_names_the_nearest_sizes(capsys):
    assert main(["search", "--img", "100", "--data", str(DATA)]) == 2
    line = _one_error_line(capsys, "search")
    assert "use 96 or 128" in line and line.count("autonn-nas search") == 2  # the error and its --help pointer, once each
    for command in ("train", "val", "predict", "export", "summary"):  # --img-size is --img's alias on every command
        base = {"train": ["--data", "d.yaml"], "val": ["--data", "d", "--weights", "w"], "predict": ["--weights", "w", "--source", "s"],
                "export": ["--weights", "w", "--format", "onnx"], "summary": ["yolov4-p5.yaml"]}[command]
        assert main([command, *base, "--img-size", "65"]) == 2
        assert "use 64 or 96" in _one_error_line(capsys, command)


def test_a_data_error_is_one_line_with_nothing_said_before_it(tmp_path, capsys):
    assert main(["search", "--data", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "run"), "--device", "cpu"]) == 2
    assert "dataset file not found" in _one_error_line(capsys, "search")
    assert main(["train", "--data", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "t"), "--device", "cpu"]) == 2
    assert "dataset file not found" in _one_error_line(capsys, "train")


def test_every_kind_of_user_error_ends_in_the_same_line(tmp_path, capsys):
    bad_arch = tmp_path / "arch.json"
    bad_arch.write_text('{"m_16": "k9_relu"}')
    assert main(["derive", "yolov4-p5-search.yaml", str(bad_arch), "-o", str(tmp_path / "x.yaml")]) == 2
    assert "no candidate chosen for block(s) m_21" in _one_error_line(capsys, "derive")
    assert main(["summary", "no-such.yaml"]) == 2
    assert "no-such.yaml" in _one_error_line(capsys, "summary")
    assert main(["demo", "--set", "epochs"]) == 2
    assert "--set expects KEY=VALUE" in _one_error_line(capsys, "demo")
    assert main(["search", "--strategy", "nope"]) == 2
    assert "invalid choice: 'nope'" in _one_error_line(capsys, "search")


def test_val_on_a_supernet_checkpoint_says_so_and_what_to_use(tmp_path, capsys):
    from autonn_nas.models.yolo import build_model
    from autonn_nas.utils.files import atomic_torch_save

    supernet = build_model("yolov4-p5-search.yaml", nc=80, width=0.125, depth=0.33)
    last = atomic_torch_save(tmp_path / "last.pt", {"model_yaml": supernet.yaml, "state_dict": supernet.state_dict(), "nc": 80})
    assert main(["val", "--data", str(DATA), "--weights", str(last), "--device", "cpu", "--project", str(tmp_path / "val")]) == 2
    line = _one_error_line(capsys, "val")
    assert "is a supernet checkpoint" in line and str(tmp_path / "bestmodel.pt") in line


def test_serve_on_a_port_in_use_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SHARED_DIR", str(tmp_path / "shared"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--host", "127.0.0.1", "--port", str(port)]) == 2
    line = _one_error_line(capsys, "serve")
    assert f"port {port} on 127.0.0.1 is in use" in line and "--port" in line


def test_run_folders_number_up_and_resume_finds_the_newest(tmp_path):
    project = tmp_path / "runs"
    assert next_run_folder(project, "exp") == project / "exp"
    (project / "exp").mkdir(parents=True)
    assert next_run_folder(project, "exp") == project / "exp2"
    (project / "exp7").mkdir()
    (project / "experiment").mkdir()  # not a number: ignored
    assert next_run_folder(project, "exp") == project / "exp8"
    assert next_run_folder(project, "exp", exist_ok=True) == project / "exp"
    assert latest_run_folder(project) is None
    for name in ("exp", "exp7"):
        (project / name / "last.pt").write_bytes(b"")
    assert latest_run_folder(project) == project / "exp7"


def _search_settings(*options: str):
    return settings_from_args(build_parser("search").parse_args(["search", "--data", str(DATA), *options]))


def test_search_run_folder_options(tmp_path):
    project = tmp_path / "runs"
    assert Path(_search_settings("--project", str(project)).out) == project / "exp"
    (project / "exp").mkdir(parents=True)
    assert Path(_search_settings("--project", str(project)).out) == project / "exp2"
    assert Path(_search_settings("--project", str(project), "--name", "coco").out).name == "coco"
    assert Path(_search_settings("--project", str(project), "--exist-ok").out) == project / "exp"
    assert Path(_search_settings("--out", str(tmp_path / "mine")).out) == tmp_path / "mine"  # --out: exactly that folder
    (project / "exp" / "last.pt").write_bytes(b"")
    assert Path(_search_settings("--project", str(project), "--resume").out) == project / "exp"
    with pytest.raises(ValueError, match="either --out DIR or --project/--name"):
        _search_settings("--out", str(tmp_path / "mine"), "--name", "x")
    with pytest.raises(ValueError, match="nothing to resume under"):
        _search_settings("--project", str(tmp_path / "empty"), "--resume")


def test_clearing_a_reused_folder_removes_only_the_runs_own_files(tmp_path):
    for name in ("search.log", "spos_evaluated.json", "notes.txt"):
        (tmp_path / name).write_text("old")
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "a.txt").write_text("0 0.5 0.5 0.1 0.1")
    assert clear_previous_run(tmp_path, ["search.log", "spos_evaluated.json", "labels", "absent.json"]) == ["labels", "search.log", "spos_evaluated.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> Path:
    from autonn_nas.models.yolo import build_model
    from autonn_nas.utils.files import atomic_torch_save

    model = build_model("yolov4-p5.yaml", nc=80, width=0.125, depth=0.33)
    return atomic_torch_save(tmp_path_factory.mktemp("weights") / "best.pt", {
        "model_yaml": model.yaml, "state_dict": model.state_dict(), "nc": 80, "names": [f"c{i}" for i in range(80)], "img_size": 64})


def test_predict_numbers_its_runs_and_a_reused_folder_holds_only_the_last_run(tiny_weights, tmp_path, capsys):
    images = sorted((DATA.parent / "images" / "val2017").glob("*.jpg"))[:3]
    project = tmp_path / "runs"
    common = ["predict", "--weights", str(tiny_weights), "--device", "cpu", "--conf", "0.0001", "--save", "--project", str(project)]
    assert main([*common, "--source", *map(str, images)]) == 0
    assert main([*common, "--source", str(images[0])]) == 0
    assert sorted(p.name for p in project.iterdir()) == ["exp", "exp2"]
    assert len(list((project / "exp" / "labels").iterdir())) == 3 and len(list((project / "exp2" / "labels").iterdir())) == 1
    capsys.readouterr()
    assert main([*common, "--source", str(images[1]), "--name", "exp", "--exist-ok"]) == 0
    assert "held an earlier run: removed" in capsys.readouterr().out
    reused = project / "exp"
    assert sorted(p.name for p in (reused / "labels").iterdir()) == [f"{images[1].stem}.txt"]
    assert sorted(p.name for p in reused.glob("*.jpg")) == [f"{images[1].stem}.jpg"]
    assert {r["file_name"] for r in json.loads((reused / "predictions.json").read_text())} <= {images[1].name}
