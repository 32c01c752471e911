"""What `val` draws: the PR curve's per-class precision/AP (COCO's interpolation, checked against pycocotools) and the
confusion matrix (YOLOv5's pairing), and the pictures themselves; progress bars only on a terminal."""
from __future__ import annotations

import io

import numpy as np
import pytest

from autonn_nas.train.coco_eval import coco_ground_truth, coco_map
from autonn_nas.train.confusion import confusion_matrix
from autonn_nas.train.metrics import match_detections, pr_curve
from autonn_nas.train.val_plots import write_val_plots
from autonn_nas.utils.progress import progress


def _truth(labels_per_image, nc=3):
    """COCO ground truth of 100x100 images from [cls, cx, cy, w, h] rows (normalised)."""
    return coco_ground_truth([np.asarray(rows, dtype=np.float64).reshape(-1, 5) for rows in labels_per_image],
                             [(100, 100)] * len(labels_per_image), [f"c{i}" for i in range(nc)])


def _det(image_id, cls, xywh, score):
    return {"image_id": image_id, "category_id": cls, "bbox": list(map(float, xywh)), "score": score}


def test_pr_curve_interpolates_as_coco_does_and_its_ap_is_pycocotools_ap50():
    truth = _truth([[[0, 0.3, 0.3, 0.2, 0.2]], [[0, 0.6, 0.6, 0.2, 0.2]]])
    results = [_det(0, 0, (20, 20, 20, 20), 0.9), _det(0, 0, (70, 5, 20, 20), 0.8), _det(1, 0, (50, 50, 20, 20), 0.7)]
    (scores, hits, n_gt), = match_detections(truth, results).values()
    curve, ap = pr_curve(scores, hits, n_gt)
    # recall 0.5 at precision 1, then recall 1.0 at precision 2/3: 51 grid points at 1, 50 at 2/3
    assert curve[:51].tolist() == [1.0] * 51 and np.allclose(curve[51:], 2 / 3)
    assert ap == pytest.approx((51 + 50 * 2 / 3) / 101)
    assert ap == pytest.approx(coco_map(truth, results)[0], abs=1e-6)
    assert pr_curve(np.zeros(0), np.zeros(0, dtype=bool), 3)[1] == 0.0


def test_confusion_matrix_pairs_by_iou_whatever_the_class():
    truth = _truth([[[0, 0.3, 0.3, 0.2, 0.2], [1, 0.7, 0.7, 0.2, 0.2], [2, 0.5, 0.1, 0.1, 0.1]]])
    results = [
        _det(0, 0, (20, 20, 20, 20), 0.9),  # class 0 found
        _det(0, 0, (60, 60, 20, 20), 0.8),  # the class 1 box, called class 0
        _det(0, 1, (0, 80, 10, 10), 0.6),  # a class 1 detection where nothing is
        _det(0, 2, (45, 5, 10, 10), 0.1),  # below the confidence threshold: not counted, so class 2 is missed
    ]
    matrix = confusion_matrix(truth, results, nc=3)
    expected = np.zeros((4, 4), dtype=np.int64)
    expected[0, 0] = expected[0, 1] = 1  # predicted 0: true 0, true 1
    expected[1, 3] = 1  # predicted 1 on background
    expected[3, 2] = 1  # true 2 missed (predicted background)
    np.testing.assert_array_equal(matrix, expected)


def test_val_plots_are_pngs(tmp_path):
    truth = _truth([[[0, 0.3, 0.3, 0.2, 0.2]], [[1, 0.6, 0.6, 0.2, 0.2]]], nc=2)
    written = write_val_plots(tmp_path, truth, [_det(0, 0, (20, 20, 20, 20), 0.9), _det(1, 0, (50, 50, 20, 20), 0.5)])
    assert set(written) == {"pr_curve", "confusion_matrix"}
    for path in written.values():
        assert path.parent == tmp_path and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("stream, bar", [(io.StringIO, False), (_Terminal, True)], ids=["log file or pipe", "terminal"])
def test_progress_bars_only_on_a_terminal(monkeypatch, stream, bar):
    stderr = stream()
    monkeypatch.setattr("sys.stderr", stderr)
    assert list(progress(range(3), "val")) == [0, 1, 2]
    assert ("val: 100%" in stderr.getvalue() and "3/3" in stderr.getvalue()) is bar
    assert bar or stderr.getvalue() == ""
    stderr.truncate(0)
    assert list(progress(range(3), "val", enabled=False)) == [0, 1, 2] and stderr.getvalue() == ""  # --no-progress
