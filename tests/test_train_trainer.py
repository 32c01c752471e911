"""End-to-end training on a few images of the embedded dataset: outputs, exact resume, val command, overfit."""
from __future__ import annotations

import csv
import time
from pathlib import Path

import pytest
import torch

from autonn_nas.cli import main as cli_main
from autonn_nas.train import trainer as trainer_module
from autonn_nas.train.checkpoint import load_checkpoint, model_from_checkpoint
from autonn_nas.train.settings import TrainSettings
from autonn_nas.train.trainer import run_training

REPO = Path(__file__).resolve().parent.parent
MINI = REPO / "shared_volume" / "datasets" / "coco128_mini"


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny convolutions on 2 threads can stall for seconds while another process holds a core (the
    OpenMP workers spin); one thread is faster here and keeps the test time steady on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _subset_yaml(tmp_path: Path, n: int) -> Path:
    """A dataset.yaml whose train and val are the same first `n` labelled images of coco128_mini."""
    images = sorted(p for p in (MINI / "images").rglob("*.jpg") if "train" in p.parent.name)
    labelled = [p for p in images if (MINI / "labels" / p.parent.name / f"{p.stem}.txt").is_file()][:n]
    assert len(labelled) == n, f"coco128_mini has fewer than {n} labelled train images"
    (tmp_path / "subset.txt").write_text("".join(f"{p}\n" for p in labelled))
    names = (MINI / "dataset.yaml").read_text().split("names:", 1)[1]
    (tmp_path / "subset.yaml").write_text(f"train: subset.txt\nval: subset.txt\nnc: 80\nnames:{names}")
    return tmp_path / "subset.yaml"


def _tiny(tmp_path: Path, out: str, **changes) -> TrainSettings:
    base = dict(data=str(_subset_yaml(tmp_path, 4)), out=str(tmp_path / out), epochs=2, img_size=64, batch_size=2,
                width=0.125, depth=0.33, device="cpu", workers=0, seed=3, progress=False, nominal_batch=4)
    base.update(changes)
    return TrainSettings(**base)


class _Interrupted(Exception):
    pass


def test_training_writes_its_outputs_and_resume_matches_an_uninterrupted_run(tmp_path, monkeypatch):
    summary = run_training(_tiny(tmp_path, "full"))
    full = tmp_path / "full"
    for name in ("results.csv", "results.png", "dataset_report.json", "last.pt", "best.pt", "train.log"):
        assert (full / name).is_file(), name
    with (full / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2"] and all(r["map50"] != "" for r in rows)
    assert all(float(r["val_box_loss"]) > 0 and float(r["val_obj_loss"]) > 0 for r in rows)  # the eval pass's own losses
    assert summary["epochs"] == 2 and 0.0 <= summary["final"]["map50"] <= 1.0
    # the best epoch is counted from 1 in the summary as in the log
    assert summary["best_epoch"] in (1, 2) and f"best epoch {summary['best_epoch']} " in (full / "train.log").read_text()

    # the interrupted run: the same 2-epoch settings, stopped right after last.pt of epoch 1 is written
    real_save = trainer_module.save_checkpoint

    def save_then_stop(path, checkpoint, for_resume=True):
        real_save(path, checkpoint, for_resume)
        if Path(path).name == "last.pt":
            raise _Interrupted

    monkeypatch.setattr(trainer_module, "save_checkpoint", save_then_stop)
    with pytest.raises(_Interrupted):
        run_training(_tiny(tmp_path, "resumed"))
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "resumed" / "last.pt")["epoch"] == 0
    run_training(TrainSettings(out=str(tmp_path / "resumed"), resume=True, device="cpu", workers=0, progress=False))

    a, b = load_checkpoint(full / "last.pt"), load_checkpoint(tmp_path / "resumed" / "last.pt")
    assert a["epoch"] == b["epoch"] == 1
    for key in ("state_dict", "train_state_dict"):
        for name, tensor in a[key].items():
            assert torch.equal(tensor, b[key][name]), f"{key}.{name} differs after resume"

    # --resume with --epochs: a new total is honoured (and said); one that leaves nothing to train is refused
    with pytest.raises(ValueError, match="has trained 2 epoch"):
        run_training(TrainSettings(out=str(tmp_path / "resumed"), resume=True, epochs=1, device="cpu", workers=0, progress=False))
    longer = run_training(TrainSettings(out=str(tmp_path / "resumed"), resume=True, epochs=3, device="cpu", workers=0, progress=False))
    assert longer["epochs"] == 3 and load_checkpoint(tmp_path / "resumed" / "last.pt")["epoch"] == 2
    assert "resuming with 3 epochs in all instead of the 2 planned" in (tmp_path / "resumed" / "train.log").read_text()


def test_checkpoint_rebuilds_the_model_and_val_command_prints_metrics(tmp_path, capsys):
    settings = _tiny(tmp_path, "run", epochs=1)
    (tmp_path / "run").mkdir()
    for stale in ("train.log", "summary.json", "notes.txt"):  # an earlier run's files in a reused folder, and the user's own
        (tmp_path / "run" / stale).write_text("EARLIER RUN")
    run_training(settings)
    assert "EARLIER RUN" not in (tmp_path / "run" / "train.log").read_text() and not (tmp_path / "run" / "summary.json").exists()
    assert (tmp_path / "run" / "notes.txt").read_text() == "EARLIER RUN"
    checkpoint = load_checkpoint(tmp_path / "run" / "best.pt")
    assert set(checkpoint) >= {"model_yaml", "state_dict", "epoch", "best_fitness", "settings", "names"}
    assert "optimizer" not in checkpoint
    model = model_from_checkpoint(checkpoint)
    assert model.nc == 80 and not model.training
    capsys.readouterr()
    assert cli_main(["val", "--data", settings.data, "--weights", str(tmp_path / "run" / "best.pt"), "--device", "cpu", "--workers", "0",
                     "--batch", "2", "--project", str(tmp_path / "val")]) == 0
    out = capsys.readouterr().out
    assert "mAP50-95" in out and "speed per image at 64 px" in out
    # the val run folder: the metrics and the pictures Ultralytics users look at
    for name in ("metrics.json", "PR_curve.png", "confusion_matrix.png"):
        assert (tmp_path / "val" / "exp" / name).stat().st_size > 0, name
    assert cli_main(["train", "--out", str(tmp_path / "nodata")]) == 2  # a user error: a message, no traceback
    assert "--data is required" in capsys.readouterr().err


@pytest.mark.slow
def test_small_model_overfits_a_handful_of_images(tmp_path):
    settings = TrainSettings(
        # 4 images at 96 px for 240 epochs reach mAP50 0.75 in under a minute of one CPU thread (8 images at 128 px for
        # 300 epochs: 0.78 in 2 minutes)
        data=str(_subset_yaml(tmp_path, 4)), out=str(tmp_path / "overfit"), epochs=240, img_size=96, batch_size=4,
        width=0.25, depth=0.33, device="cpu", workers=0, seed=0, augment=False, progress=False, eval_interval=120,
        nominal_batch=4, hyp={"lr0": 0.05, "lrf": 1.0, "warmup_epochs": 1.0},
    )
    started = time.perf_counter()
    summary = run_training(settings)
    elapsed = time.perf_counter() - started
    print(f"overfit: mAP50 {summary['final']['map50']:.3f}, mAP50-95 {summary['final']['map']:.3f} in {elapsed:.0f} s")
    assert summary["final"]["map50"] >= 0.5
    assert elapsed < 600  # "a few minutes" of CPU (about 1 min on a 2-core VM); far slower means something regressed
