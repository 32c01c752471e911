"""The retrain after a search, and `autonn-nas train --weights` from what a search writes, on the embedded
coco128_mini with a tiny model (seconds each): the shipped model is fine-tuned and reported before and after,
a search stopped during its retrain resumes the retrain and ends with the weights of an uninterrupted run,
every checkpoint kind a search and the Trainer write loads completely, and --strict refuses another nc."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from autonn_nas.cli import main
from autonn_nas.models.yolo import build_model, load_cfg
from autonn_nas.search.runner import run_search
from autonn_nas.search.settings import SearchSettings
from autonn_nas.search.weights_file import read_weights
from autonn_nas.train.checkpoint import load_checkpoint
from autonn_nas.train.weights import load_fitting

pytestmark = pytest.mark.slow
DATA = Path(__file__).resolve().parents[1] / "shared_volume" / "datasets" / "coco128_mini" / "dataset.yaml"
TINY = dict(data=str(DATA), strategy="proxyless", epochs=1, retrain_epochs=2, img_size=64, batch_size=8, width=0.125,
            depth=0.33, workers=0, device="cpu", progress=False, budget=1.1, seed=0)
TRAIN = ["--data", str(DATA), "--epochs", "1", "--img", "64", "--batch", "8", "--device", "cpu", "--workers", "0", "--no-progress"]


class Stopped(Exception):
    """What a /stop is to the search: it ends wherever the search is."""


@pytest.fixture(scope="module")
def single_thread():
    # resume equivalence is bit-exact on one CPU thread only (see test_search_e2e.py)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def searched(tmp_path_factory, single_thread):
    events: list[tuple[str, dict]] = []
    result = run_search(SearchSettings(**TINY, out=str(tmp_path_factory.mktemp("search"))), on_event=lambda u, c: events.append((u, c)))
    return result, events


def _states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_retrain_fine_tunes_the_shipped_model_and_reports_before_and_after(searched):
    result, events = searched
    out = result.out_dir
    report = json.loads(result.report.read_text())
    retrain, inherited = report["retrain"], report["derived"]["val"]
    trained = load_checkpoint(out / "retrain" / "last.pt")
    assert retrain["epochs"] == 2 and trained["epoch"] == 1 and retrain["train_images"] == 32  # the whole train split
    assert retrain["inherited"] == {"map50": inherited["map50"], "map": inherited["map"]}
    assert retrain["val"] == {k: trained["metrics"][k] for k in ("precision", "recall", "map50", "map")}
    assert result.metrics == report["metrics"]
    assert (result.metrics["map50"], result.metrics["map"]) == (retrain["val"]["map50"], retrain["val"]["map"])
    assert (result.metrics["inherited_map50"], result.metrics["inherited_map"], result.metrics["retrain_epochs"]) == (
        inherited["map50"], inherited["map"], 2)
    markdown = (out / "report.md").read_text()
    assert "## Retrain" in markdown and "| shipped, after 2 retrain epochs |" in markdown
    assert "| shipped, inherited weights (before the retrain) |" in markdown and "| base architecture, inherited weights |" in markdown
    # bestmodel.pt is the retrain's last moving average, no longer the supernet's weights it started from
    shipped = load_checkpoint(result.weights)
    assert _states_equal(shipped["state_dict"], trained["state_dict"]) and shipped["metrics"] == result.metrics
    supernet = read_weights(out / "last.pt")  # the sub-network of arch.json, as the search cut it out before the retrain
    conv = "model.0.conv.weight"
    assert not torch.equal(shipped["state_dict"][conv], supernet.state_dict[conv])
    assert build_model(result.model_yaml).state_dict().keys() == shipped["state_dict"].keys()
    # progress: the retrain's epochs follow the supernet's, with val figures, and nas_end comes last
    kinds = [u for u, _ in events]
    assert kinds.index("retrain_start") > kinds.index("epoch_summary") and kinds[-1] == "nas_end"
    rows = [(c["phase"], c["epoch"], c["epochs"], c["run_epoch"], c["run_epochs"]) for u, c in events if u == "epoch_summary"]
    assert rows == [("supernet_training", 0, 1, 0, 3), ("retraining", 0, 2, 1, 3), ("retraining", 1, 2, 2, 3)]
    last = [c for u, c in events if u == "epoch_summary"][-1]
    assert last["map50"] == retrain["val"]["map50"] and last["map"] == retrain["val"]["map"]
    assert dict(events)["nas_end"]["metrics"] == result.metrics


def test_a_search_stopped_during_the_retrain_resumes_it_with_the_same_weights(searched, tmp_path, capsys):
    reference, _ = searched
    out = tmp_path / "stopped"

    def stop_in_the_retrain(update: str, content: dict) -> None:
        if update == "epoch_summary" and content["phase"] == "retraining":  # its epoch 1 of 2 is checkpointed
            raise Stopped()

    with pytest.raises(Stopped):
        run_search(SearchSettings(**TINY, out=str(out)), on_event=stop_in_the_retrain)
    assert load_checkpoint(out / "retrain" / "last.pt")["epoch"] == 0
    supernet_checkpoint = (out / "last.pt").stat().st_mtime_ns
    capsys.readouterr()
    assert main(["search", "--resume", "--out", str(out), "--device", "cpu", "--workers", "0", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    # the search and its derivation are not done again: the retrain goes on from its own checkpoint
    assert (out / "last.pt").stat().st_mtime_ns == supernet_checkpoint
    assert "resuming the retrain" in (out / "search.log").read_text()
    retrain_log = (out / "retrain" / "train.log").read_text()  # appended to by both runs
    assert retrain_log.count("epoch 1/2: loss") == 1 and retrain_log.count("epoch 2/2: loss") == 1
    assert _states_equal(load_checkpoint(out / "bestmodel.pt")["state_dict"], load_checkpoint(reference.weights)["state_dict"])
    m = json.loads((out / "report.json").read_text())["metrics"]
    assert m == reference.metrics
    assert (f"val mAP50 / mAP50-95: {m['map50']:.4f} / {m['map']:.4f} after 2 retrain epochs (inherited weights: "
            f"{m['inherited_map50']:.4f} / {m['inherited_map']:.4f}; base architecture, inherited: ") in printed


def test_every_checkpoint_kind_a_search_writes_loads_completely(searched, tmp_path):
    result, _ = searched
    out = result.out_dir
    torch.save(load_checkpoint(result.weights)["state_dict"], tmp_path / "state_dict.pt")
    kinds = [(result.weights, "derived"), (out / "last.pt", "supernet"), (out / "retrain" / "last.pt", "trained"),
             (out / "retrain" / "best.pt", "trained"), (tmp_path / "state_dict.pt", "state_dict")]
    for path, kind in kinds:
        weights = read_weights(path)
        assert weights.kind == kind, path
        model = build_model(weights.model_yaml or load_cfg(result.model_yaml), nc=80)
        summary = load_fitting(model, weights, strict=True)
        assert summary.loaded == summary.total and not summary.skipped, path
    assert read_weights(out / "last.pt").arch == result.arch.to_dict()  # the architecture the search shipped (arch.json)


def test_train_fine_tunes_a_search_s_bestmodel_and_strict_refuses_another_nc(searched, tmp_path, capsys):
    result, _ = searched
    run = tmp_path / "fine_tune"
    assert main(["train", *TRAIN, "--weights", str(result.weights), "--out", str(run)]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["initial_weights"]["kind"] == "derived" and summary["initial_weights"]["skipped"] == []
    assert summary["initial_weights"]["loaded"] == summary["initial_weights"]["total"]
    tuned, shipped = load_checkpoint(run / "last.pt"), load_checkpoint(result.weights)
    assert tuned["model_yaml"] == shipped["model_yaml"]  # the derived architecture and its width, not the CPU default's
    conv = "model.0.conv.weight"
    assert not torch.equal(tuned["state_dict"][conv], shipped["state_dict"][conv])  # it trained

    three = tmp_path / "three.yaml"  # the same images, 3 classes: the Detect layer has another shape
    three.write_text(f"path: {DATA.parent}\ntrain: images/train2017\nval: images/val2017\nnc: 3\nnames: [a, b, c]\n")
    capsys.readouterr()
    code = main(["train", *TRAIN, "--data", str(three), "--weights", str(result.weights), "--strict", "--out", str(tmp_path / "strict")])
    printed = capsys.readouterr().err.strip()  # the run's log lines, then the error in one line
    error = printed.splitlines()[-1]
    detect = len(load_cfg(result.model_yaml)["backbone"]) + len(load_cfg(result.model_yaml)["head"]) - 1
    assert code == 2 and "Traceback" not in printed
    assert error.startswith(f"autonn-nas train: error: {result.weights}: model.{detect}.m.0.weight does not fit (shape (340, ")
