"""evaluate(): a model that outputs the letterboxed ground truth scores mAP 1.0 once boxes are mapped back
to the original images; shifted outputs score lower; a model that finds nothing scores 0 without crashing."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn as nn

from autonn_nas.data import YoloDataset, create_dataloader, load_dataset_config
from autonn_nas.train.evaluate import evaluate

MINI = Path(__file__).resolve().parent.parent / "shared_volume" / "datasets" / "coco128_mini" / "dataset.yaml"
NC = 80


class ReplayModel(nn.Module):
    """Returns, batch after batch, the eval-mode output encoding given boxes (one query per box)."""

    def __init__(self, outputs: list[torch.Tensor]):
        super().__init__()
        self.outputs = outputs
        self.calls = 0

    def forward(self, images: torch.Tensor):
        out = self.outputs[self.calls]
        self.calls += 1
        return out, []


def _outputs(loader, shift_fraction: float = 0.0, empty: bool = False) -> list[torch.Tensor]:
    outputs = []
    for images, targets, _paths, _shapes in loader:
        bs, _, h, w = images.shape
        n = max(int((targets[:, 0] == i).sum()) for i in range(bs)) if len(targets) else 0
        pred = torch.zeros(bs, max(n, 1), 5 + NC)
        for i in range(bs):
            rows = targets[targets[:, 0] == i]
            for j, (_, cls, cx, cy, bw, bh) in enumerate(rows.tolist()):
                pred[i, j, :4] = torch.tensor([(cx + shift_fraction * bw) * w, cy * h, bw * w, bh * h])
                pred[i, j, 4] = 0.0 if empty else 0.9
                pred[i, j, 5 + int(cls)] = 1.0
        outputs.append(pred)
    return outputs


@pytest.fixture(scope="module")
def loader():
    data = load_dataset_config(MINI)
    dataset = YoloDataset.from_config(data, "val", 640, augment=False)  # no model runs: size costs nothing
    return create_dataloader(dataset, batch_size=8, shuffle=False, workers=0)


@pytest.mark.parametrize("shift,expect_one", [(0.0, True), (0.6, False)])
def test_letterboxed_ground_truth_scores_one_and_shifted_boxes_lower(loader, shift, expect_one, tmp_path):
    metrics = evaluate(ReplayModel(_outputs(loader, shift)), loader, "cpu", save_json=tmp_path / "pred.json")
    assert metrics["images"] == len(loader.dataset)
    assert (tmp_path / "pred.json").is_file()
    if expect_one:
        # at 640 px no box is below NMS's 2 px minimum side (at 160 px a few tiny COCO boxes would be);
        # letterbox rounding moves boxes by under a pixel: IoU stays > 0.95
        assert metrics["map50"] == pytest.approx(1.0) and metrics["map"] > 0.95
        assert metrics["precision"] == pytest.approx(1.0) and metrics["recall"] == pytest.approx(1.0)
    else:
        assert metrics["map50"] < 0.2 and metrics["map"] < 0.2


def test_no_detections_score_zero(loader):
    metrics = evaluate(ReplayModel(_outputs(loader, empty=True)), loader, "cpu")
    assert metrics["detections"] == 0 and metrics["map50"] == 0.0 and metrics["precision"] == 0.0
