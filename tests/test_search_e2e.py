"""End-to-end searches on the embedded coco128_mini with a tiny supernet (seconds each), per strategy:
outputs, budget, moving architecture weights, train/held-out/val separation, resume equivalence,
warm start, the CUDA out-of-memory fallback (simulated) and the CLI."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from autonn_nas.cli import main
from autonn_nas.models.choice import searchable_blocks, set_architecture
from autonn_nas.models.yolo import build_model
from autonn_nas.search import runner as runner_module
from autonn_nas.search.arch import Architecture
from autonn_nas.search.runner import run_search
from autonn_nas.search.settings import STRATEGIES, SearchSettings
from autonn_nas.search.strategies import STRATEGY_CLASSES
from autonn_nas.search.warm_start import warm_start
from autonn_nas.train.checkpoint import load_checkpoint, model_from_checkpoint

DATA = Path(__file__).resolve().parents[1] / "shared_volume" / "datasets" / "coco128_mini" / "dataset.yaml"
TINY = dict(data=str(DATA), epochs=2, img_size=64, batch_size=8, width=0.125, depth=0.33, workers=0, device="cpu",
            evaluations=4, progress=False, budget=1.1, seed=0, retrain_epochs=0)  # the retrain: test_search_retrain.py


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    # With several CPU threads, some reductions sum in an order that can vary from run to run (last-bit
    # differences that training amplifies); bit-exact reproducibility and resume equivalence need one thread.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_settings(tmp: Path, strategy: str, **changes) -> SearchSettings:
    return SearchSettings(**{**TINY, "out": str(tmp), "strategy": strategy, **changes})


@pytest.fixture(scope="module")
def searches(tmp_path_factory, single_thread):
    runs = {}
    for strategy in STRATEGIES:
        events = []
        result = run_search(tiny_settings(tmp_path_factory.mktemp(strategy), strategy), on_event=lambda u, c: events.append((u, c)))
        runs[strategy] = (result, events)
    return runs


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_search_writes_a_derived_model_within_budget(strategy, searches):
    result, events = searches[strategy]
    out = result.out_dir
    for name in ("arch.json", "neck_nas_model.yaml", "bestmodel.pt", "report.json", "report.md", "last.pt", "history.json",
                 "files_read.json", "cost_table.json"):
        assert (out / name).is_file(), name
    plots = {"pareto": str(out / "pareto.png")} | ({} if strategy == "spos" else {"alpha": str(out / "alpha.png")})  # spos: no probabilities
    assert json.loads(result.report.read_text())["files"]["plots"] == plots and all(Path(p).is_file() for p in plots.values())
    assert Architecture.load(out / "arch.json") == result.arch
    report = json.loads(result.report.read_text())
    assert report["derived"]["within_budget"] and report["derived"]["cost"] <= report["budget"]["limit"] * (1 + 1e-9)
    assert report["budget"]["limit"] == pytest.approx(1.1 * report["base"]["cost"])
    assert report["cost_model"]["measure"] == "flops" and "counted" in report["cost_model"]["source"]
    for row in ("derived", "base"):
        assert set(report[row]["val"]) >= {"map50", "map"}
    # the derived weights rebuild from the YAML alone and match the architecture
    checkpoint = load_checkpoint(result.weights)
    model = model_from_checkpoint(checkpoint)
    assert not searchable_blocks(model)
    assert build_model(result.model_yaml).state_dict().keys() == model.state_dict().keys()
    assert checkpoint["arch"] == result.arch.to_dict()
    # the derived weights are the supernet's moving average (BN statistics aside: recalibrated), not its last weights
    last = load_checkpoint(out / "last.pt")
    assert last["ema"]["updates"] > 0
    first_conv = "model.0.conv.weight"
    assert torch.equal(checkpoint["state_dict"][first_conv], last["ema"]["state_dict"][first_conv])
    assert not torch.equal(checkpoint["state_dict"][first_conv], last["state_dict"][first_conv])
    kinds = [u for u, _ in events]
    assert kinds[0] == "nas_start" and kinds[-1] == "nas_end" and kinds.count("epoch_summary") == 2
    assert ("evolution_search" in kinds) == (strategy == "spos")
    summary = [c for u, c in events if u == "epoch_summary"][-1]
    assert {"epoch", "epochs", "phase", "box_loss", "obj_loss", "cls_loss", "alpha"} <= set(summary)
    json.dumps([c for _, c in events])  # JSON-able for the stage's status updates


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_the_search_ships_the_base_unless_the_confirmation_says_otherwise(strategy, searches):
    """Architecture steps happened, and what ships follows the recorded decision: the searched architecture only
    with a confirmation interval below zero, else the base, with the reason in report.json, report.md and arch.json."""
    result, _ = searches[strategy]
    report = json.loads(result.report.read_text())
    if STRATEGY_CLASSES[strategy].has_arch_weights:
        assert sum(row.get("arch_steps", 0) for row in report["history"]) >= 2
    decision = report["decision"]
    base = {label: "k3_mish" for label in result.arch}
    assert decision["shipped"] in ("derived", "base") and decision["reason"]
    assert dict(result.arch) == (decision["searched"] if decision["shipped"] == "derived" else base)
    if decision["searched"] != base:
        confirmation = decision["confirmation"]
        assert confirmation["images"] == report["dataset"]["confirmation"] > 0
        assert (confirmation["ci_high"] < 0) == (decision["shipped"] == "derived")
    assert decision["reason"] in (result.out_dir / "report.md").read_text()
    assert json.loads((result.out_dir / "arch.json").read_text())["reason"] == decision["reason"]
    assert result.metrics["decision"]["shipped"] == decision["shipped"]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_architecture_decisions_never_read_validation_images(strategy, searches):
    result, _ = searches[strategy]
    read = json.loads((result.out_dir / "files_read.json").read_text())
    from autonn_nas.data import load_dataset_config

    config = load_dataset_config(DATA)
    val = {str(p) for p in config.val}
    train = {str(p) for p in config.train}
    architecture, weights, report = set(read["architecture"]), set(read["weight_training"]), set(read["report"])
    confirmation = set(read["confirmation"])
    assert not architecture & val and architecture <= train
    assert not architecture & weights  # held-out part and training part are disjoint
    assert confirmation <= train and not confirmation & (architecture | weights | val)  # read by the confirmation alone
    assert not set(read["bn_recalibration"]) & val
    assert report and report <= val
    if STRATEGY_CLASSES[strategy].has_arch_weights or strategy == "spos":
        assert architecture  # and the held-out part really was used


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_resumed_search_ends_like_an_uninterrupted_one(strategy, searches, tmp_path):
    class Killed(Exception):
        pass

    def kill_after_first_epoch(update_id, content):
        if update_id == "epoch_summary" and content["epoch"] == 0:
            raise Killed()

    settings = tiny_settings(tmp_path, strategy)
    with pytest.raises(Killed):
        run_search(settings, on_event=kill_after_first_epoch)
    resumed = run_search(settings.replace(resume=True))
    uninterrupted, _ = searches[strategy]
    assert resumed.arch == uninterrupted.arch
    a = load_checkpoint(resumed.out_dir / "last.pt")
    b = load_checkpoint(uninterrupted.out_dir / "last.pt")
    if "alpha" in b["strategy"]:
        assert torch.equal(a["strategy"]["alpha"], b["strategy"]["alpha"])
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in b["state_dict"])
    assert a["ema"]["updates"] == b["ema"]["updates"]
    assert all(torch.equal(a["ema"]["state_dict"][k], b["ema"]["state_dict"][k]) for k in b["ema"]["state_dict"])


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_reopened_search_scores_its_pick_as_the_search_did(strategy, searches):
    from autonn_nas.search.runner import SearchRun

    result, _ = searches[strategy]
    report = json.loads(result.report.read_text())
    run = SearchRun.reopen(result.out_dir, device="cpu", workers=0)
    assert run.settings.strategy == strategy and run.start_epoch == TINY["epochs"]  # training is over: nothing to redo
    last = load_checkpoint(result.out_dir / "last.pt")
    assert all(torch.equal(value, last["ema"]["state_dict"][key]) for key, value in run.model.state_dict().items())  # as derived
    if run.strategy.alpha is not None:
        assert torch.equal(run.strategy.alpha.detach(), last["strategy"]["alpha"])
    val = run.evaluator().val_metrics(result.arch)
    assert val["map50"] == pytest.approx(report["derived"]["val"]["map50"], abs=1e-9)
    assert val["map"] == pytest.approx(report["derived"]["val"]["map"], abs=1e-9)


def test_warm_started_supernet_computes_the_base_model_with_any_kernel(tmp_path):
    torch.manual_seed(1)
    base = build_model("yolov4-p5.yaml", nc=3, width=0.125, depth=0.33).eval()
    for m in base.modules():  # non-trivial BN statistics, so a wrong copy would show
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    path = tmp_path / "base.pt"
    torch.save(base.state_dict(), path)
    supernet = build_model("yolov4-p5-search.yaml", nc=3, width=0.125, depth=0.33).eval()
    warm_start(supernet, path)
    x = torch.rand(1, 3, 64, 64)
    expected = base(x)[0]
    labels = list(searchable_blocks(supernet))
    for name in ("k3_mish", "k5_mish"):  # 5x5 kernels are the 3x3 ones zero-padded: the same function
        set_architecture(supernet, {label: name for label in labels})
        assert torch.allclose(supernet(x)[0], expected, atol=1e-4), name
    wrong = build_model("yolov4-p5.yaml", nc=5, width=0.125, depth=0.33)
    torch.save(wrong.state_dict(), path)
    with pytest.raises(ValueError, match="base.pt"):
        warm_start(supernet, path)


def test_search_with_warm_start_and_measured_latency(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the latency lookup table goes here
    torch.manual_seed(2)
    base = build_model("yolov4-p5.yaml", nc=80, width=0.125, depth=0.33)
    torch.save(base.state_dict(), tmp_path / "base.pt")
    settings = tiny_settings(tmp_path / "run", "proxyless", epochs=1, weights=str(tmp_path / "base.pt"), cost_measure="latency", budget=None)
    result = run_search(settings)
    report = json.loads(result.report.read_text())
    assert report["cost_model"]["measure"] == "latency" and "measured on cpu" in report["cost_model"]["source"]
    assert report["derived"]["cost"] <= report["base"]["cost"] * (1 + 1e-9)  # default budget: no slower than the base
    assert report["warm_start"] == str(tmp_path / "base.pt")
    assert (tmp_path / "cache" / "autonn_nas" / "latency_cache.json").is_file()
    table = json.loads((result.out_dir / "cost_table.json").read_text())  # reusable as --latency-table elsewhere
    again = run_search(settings.replace(out=str(tmp_path / "run2"), latency_table=str(result.out_dir / "cost_table.json")))
    assert json.loads(again.report.read_text())["cost_model"]["source"].startswith(f"latency table {result.out_dir / 'cost_table.json'}")
    assert again.arch == result.arch and table["blocks"]


def test_cuda_out_of_memory_halves_the_batch_and_the_search_goes_on(tmp_path, monkeypatch):
    real = runner_module.train_supernet_epoch
    calls = []

    def first_call_runs_out_of_memory(*args, **kwargs):
        calls.append(len(args[1]))  # batches per epoch of the training loader
        if len(calls) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB (simulated)")
        return real(*args, **kwargs)

    monkeypatch.setattr(runner_module, "train_supernet_epoch", first_call_runs_out_of_memory)
    result = run_search(tiny_settings(tmp_path, "proxyless", epochs=1))
    report = json.loads(result.report.read_text())
    assert report["batch_size"] == 4 and report["batch_changes"][0]["from"] == 8
    assert calls[1] > calls[0]  # the epoch restarted with smaller (so more) batches


def test_cli_search_and_its_errors(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    for stale in ("spos_evaluated.json", "search.log", "notes.txt"):  # an earlier spos run's files, and the user's own
        (out / stale).write_text("EARLIER RUN")
    args = ["search", "--data", str(DATA), "--epochs", "1", "--img", "64", "--batch", "8", "--width", "0.125", "--depth", "0.33",
            "--workers", "0", "--device", "cpu", "--out", str(out), "--strategy", "proxyless", "--lightweight-level", "10", "--no-progress"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "architecture: m_16=" in printed and "x base" in printed
    # a reused folder never mixes two runs: the earlier run's files are gone (and that is said), the user's stay
    log_text = (out / "search.log").read_text()
    assert not (out / "spos_evaluated.json").exists() and "EARLIER RUN" not in log_text and "held an earlier run" in log_text
    assert (out / "notes.txt").read_text() == "EARLIER RUN"
    # the record says the sizes, and derive builds the very model the search shipped from it
    assert json.loads((out / "arch.json").read_text())["model"] == {"nc": 80, "width_multiple": 0.125, "depth_multiple": 0.33}
    assert main(["derive", "yolov4-p5-search.yaml", str(out), "-o", str(tmp_path / "again.yaml")]) == 0
    strip = lambda path: [line for line in path.read_text().splitlines() if not line.startswith("#")]  # noqa: E731
    assert strip(tmp_path / "again.yaml") == strip(out / "neck_nas_model.yaml")
    report = json.loads((out / "report.json").read_text())
    assert report["budget"]["lightweight_level"] == 10 and report["derived"]["cost"] <= report["base"]["cost"]
    assert main(["search", "--out", str(out), "--resume", "--device", "cpu", "--no-progress", "--epochs", "5"]) == 0  # a finished run: derives again
    assert "ignored: epochs=5 (the run has 1)" in (out / "search.log").read_text()
    assert main(args + ["--budget", "0.5"]) == 2
    assert "use a budget of at least 1.0000" in capsys.readouterr().err
    assert main(["search", "--data", str(tmp_path / "missing.yaml"), "--out", str(out), "--device", "cpu"]) == 2
    assert main(["search", "--out", str(tmp_path / "empty"), "--resume", "--device", "cpu"]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    assert main(["search", "--out", str(out), "--device", "cpu"]) == 2
    assert "no dataset given" in capsys.readouterr().err


def test_cli_val_reads_a_derived_model_at_its_search_size(searches, tmp_path, capsys):
    result, _ = searches["proxyless"]
    predictions = tmp_path / "predictions.json"
    args = ["val", "--data", str(DATA), "--weights", str(result.weights), "--device", "cpu", "--workers", "0",
            "--save-json", str(predictions), "--project", str(tmp_path / "val")]
    assert main(args) == 0
    assert f"at {TINY['img_size']} px" in capsys.readouterr().out  # bestmodel.pt keeps its size at the top level
    rows = json.loads(predictions.read_text())
    assert isinstance(rows, list) and all({"image_id", "category_id", "bbox", "score"} <= set(r) for r in rows)
    assert main(args + ["--img", "65"]) == 2
    assert "multiple of 32" in capsys.readouterr().err


def test_search_on_a_dataset_whose_val_is_its_train_warns_and_reports_it(searches, tmp_path, caplog):
    names = DATA.read_text().split("names:", 1)[1]
    train = DATA.parent / "images" / "train2017"
    same = tmp_path / "same.yaml"
    same.write_text(f"train: {train}\nval: {train}\nnc: 80\nnames:{names}")
    with caplog.at_level("WARNING"):
        result = run_search(tiny_settings(tmp_path / "run", "proxyless", data=str(same), epochs=1))
    report = json.loads(result.report.read_text())
    assert report["dataset"]["train_val_overlap"] == report["dataset"]["val"] == 32
    assert "in both train and val" in caplog.text
    clean, _ = searches["proxyless"]
    assert json.loads(clean.report.read_text())["dataset"]["train_val_overlap"] == 0


def test_cuda_memory_probe_leaves_the_supernet_as_it_was(tmp_path):
    # the probe runs on CUDA only; here its code path runs on the CPU and must leave no trace
    run = runner_module.SearchRun(tiny_settings(tmp_path, "darts"))
    run._setup()
    before = {k: v.clone() for k, v in run.model.state_dict().items()}
    run._memory_probe(2)
    assert all(torch.equal(before[k], v) for k, v in run.model.state_dict().items())
    assert all(p.grad is None for p in run.model.parameters())
    assert all(b.mixture is None for b in searchable_blocks(run.model).values())


def test_prior_art_schedule_leaves_the_random_start_in_place(tmp_path):
    """arch_warmup=prior_art (for the side-by-side only): NNI-style random logits, no architecture step in a
    short run, so the pick is whatever the random start ranks first; ours moves on the same run."""
    result = run_search(tiny_settings(tmp_path, "proxyless", arch_warmup="prior_art"))
    report = json.loads(result.report.read_text())
    assert report["arch_schedule"]["arch_steps"] == 0 and report["arch_schedule"]["first_arch_iteration"] == 1000
    start, end = report["history"][0]["alpha"], report["history"][-1]["alpha"]
    assert start == end
    assert all(len(set(row.values())) == 6 for row in start.values())  # a random start, not a uniform one
    assert all(abs(p - 1 / 6) < 1e-3 for row in end.values() for p in row.values())
