"""results.csv / results.png, checkpoints (weights_only-loadable, RNG restore) and training settings."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from autonn_nas.train.checkpoint import load_checkpoint, restore_rng_states, rng_states, save_checkpoint
from autonn_nas.train.results import fitness, plot_results, read_results, write_results_row
from autonn_nas.train.settings import TrainSettings


def test_results_rows_are_replaced_from_the_resumed_epoch_and_plotted(tmp_path):
    csv_path = tmp_path / "results.csv"
    for epoch in range(3):
        write_results_row(csv_path, {"epoch": epoch, "box_loss": 0.1 / (epoch + 1), "map50": 0.1 * epoch, "map50_95": 0.05 * epoch, "lr1": 0.01})
    write_results_row(csv_path, {"epoch": 1, "box_loss": 0.5})  # resumed after epoch 0: epochs 1, 2 are rewritten
    rows = read_results(csv_path)
    assert [int(r["epoch"]) for r in rows] == [0, 1] and float(rows[1]["box_loss"]) == 0.5
    assert list(rows[0]) == ["epoch", "box_loss", "obj_loss", "cls_loss", "precision", "recall", "map50", "map50_95",
                             "val_box_loss", "val_obj_loss", "val_cls_loss", "lr0", "lr1", "lr2"]
    png = plot_results(csv_path, tmp_path / "results.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot_results(tmp_path / "none.csv", tmp_path / "none.png") is None
    assert fitness({"map50": 0.5, "map": 0.3}) == pytest.approx(0.32)


def test_checkpoint_is_plain_and_restores_random_states(tmp_path):
    generator = torch.Generator().manual_seed(5)
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    states = rng_states({"loader": generator})
    expected = (torch.rand(3), np.random.rand(3), random.random(), torch.rand(2, generator=generator))
    checkpoint = {"model_yaml": {"nc": 1}, "state_dict": {"w": torch.ones(2)}, "rng": states, "optimizer": {"state": {}}, "epoch": 0}
    save_checkpoint(tmp_path / "last.pt", checkpoint)
    save_checkpoint(tmp_path / "best.pt", checkpoint, for_resume=False)
    loaded = load_checkpoint(tmp_path / "last.pt")  # weights_only=True inside
    restore_rng_states(loaded["rng"], {"loader": generator})
    again = (torch.rand(3), np.random.rand(3), random.random(), torch.rand(2, generator=generator))
    assert torch.equal(expected[0], again[0]) and np.array_equal(expected[1], again[1]) and expected[2] == again[2]
    assert torch.equal(expected[3], again[3])
    best = load_checkpoint(tmp_path / "best.pt")
    assert "optimizer" not in best and "rng" not in best and torch.equal(best["state_dict"]["w"], torch.ones(2))


def test_checkpoint_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")
    torch.save({"weights": torch.ones(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="other.pt lacks"):
        load_checkpoint(tmp_path / "other.pt")


def test_settings_defaults_follow_the_device():
    cpu = TrainSettings(data="d.yaml").resolve_defaults(on_gpu=False)
    assert (cpu.img_size, cpu.width, cpu.depth) == (320, 0.25, 0.33)
    gpu = TrainSettings(data="d.yaml", epochs=3).resolve_defaults(on_gpu=True)
    assert (gpu.img_size, gpu.width, gpu.depth, gpu.epochs) == (640, None, None, 3)
    with pytest.raises(ValueError, match="multiple of 32"):
        TrainSettings(img_size=100).resolve_defaults(on_gpu=False)
    with pytest.raises(ValueError, match="unknown training setting"):
        TrainSettings.from_mapping({"lr": 1})
