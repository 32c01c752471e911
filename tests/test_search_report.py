"""The search's human-facing outputs: alpha.png (probabilities per block, or the spos score scatter) and report.md."""
from __future__ import annotations

import copy

import pytest
from PIL import Image

from autonn_nas.models.search_space import CANDIDATES
from autonn_nas.search import report as report_module
from autonn_nas.search.report import markdown_report, plot_alpha, plot_pareto

LABELS = ("m_16", "m_21", "m_25", "m_29")
BASE = {label: "k3_mish" for label in LABELS}
PICK = {"m_16": "k3_relu", "m_21": "k3_mish", "m_25": "k3_leaky", "m_29": "k3_mish"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _history(epochs: int = 5) -> list[dict]:
    """A proxyless-like history: the start row (epoch -1) then one row per epoch; the 5x5 candidates are
    masked out by the budget (probability exactly 0 throughout) and each block drifts toward its pick."""
    rows = []
    for epoch in range(-1, epochs):
        step = epoch + 1
        alpha = {}
        for label in LABELS:
            probs = {name: 0.0 for name in CANDIDATES}
            others = [name for name in CANDIDATES if name.startswith("k3") and name != PICK[label]]
            probs[PICK[label]] = 1 / 3 + 0.08 * step
            for name in others:
                probs[name] = (1 - probs[PICK[label]]) / len(others)
            alpha[label] = probs
        rows.append({"epoch": epoch, "phase": "start" if epoch < 0 else "train", "alpha": alpha})
    return rows


def _assert_png(path, min_bytes: int = 10_000) -> Image.Image:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > min_bytes  # a real chart, not an empty canvas
    image = Image.open(path)
    image.load()
    return image


def _capture_figure(monkeypatch) -> list:
    """Keep the figure each plot saves, to check what is drawn rather than only that a PNG exists."""
    figures = []
    real_save = report_module.save_figure

    def save(fig, path, *args, **kwargs):
        figures.append(fig)
        return real_save(fig, path, *args, **kwargs)

    monkeypatch.setattr(report_module, "save_figure", save)
    return figures


def test_plot_alpha_marks_the_pick_and_writes_a_png(tmp_path, monkeypatch):
    figures = _capture_figure(monkeypatch)
    title = "proxyless search on coco128: shipped the derived architecture"
    path = plot_alpha(_history(), tmp_path / "alpha.png", pick=PICK, title=title)
    assert path == tmp_path / "alpha.png"
    image = _assert_png(path)
    assert image.width > image.height  # one panel per block, side by side

    fig = figures[0]
    assert fig._suptitle is not None and fig._suptitle.get_text() == title
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == [f"{label}: pick {PICK[label]}" for label in LABELS]
    for ax in axes:
        assert ax.get_xlabel() == "epoch"
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks)  # whole epochs only
    first = axes[0]
    # start at x = 0, epoch e at x = e + 1
    assert list(first.lines[0].get_xdata()) == [0, 1, 2, 3, 4, 5]
    # the picked candidate is the thickest line, and a star sits on its last point
    thickest = max(first.lines, key=lambda line: line.get_linewidth())
    assert thickest.get_ydata()[-1] == pytest.approx(_history()[-1]["alpha"]["m_16"]["k3_relu"])
    stars = [line for line in first.lines if line.get_marker() == "*"]
    assert len(stars) == 1 and list(stars[0].get_xdata()) == [5]

    legend_texts = [t.get_text() for t in fig.legends[0].get_texts()]
    # the masked 5x5 candidates stay in the legend, said to be masked; the 3x3 ones by plain name
    assert {"k5_relu (masked out)", "k5_leaky (masked out)", "k5_mish (masked out)"} <= set(legend_texts)
    assert {"k3_relu", "k3_leaky", "k3_mish", "pick (shipped)"} <= set(legend_texts)


def test_plot_alpha_without_pick_or_probabilities(tmp_path, monkeypatch):
    figures = _capture_figure(monkeypatch)
    path = plot_alpha(_history(epochs=2), tmp_path / "plain.png")
    _assert_png(path)
    fig = figures[0]
    assert [ax.get_title() for ax in fig.axes] == list(LABELS)
    assert not any(line.get_marker() == "*" for ax in fig.axes for line in ax.lines)
    assert fig._suptitle is None
    # spos has no probabilities: nothing to chart, nothing written
    assert plot_alpha([{"epoch": -1, "alpha": None}, {"epoch": 0}], tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()


def _evaluated(score: str) -> list[dict]:
    archs = [BASE, PICK, {**BASE, "m_16": "k5_relu"}, {**BASE, "m_29": "k3_leaky"}, {**PICK, "m_25": "k5_mish"}]
    records = []
    for i, arch in enumerate(archs):
        cost = 100.0 + 10 * i
        value = {"loss": 2.0 - 0.1 * i, "fitness": 0.2 + 0.01 * i}[score]
        records.append({"architecture": dict(arch), "cost": cost, "generation": 0, score: value})
    return records


def test_plot_pareto_by_loss(tmp_path, monkeypatch):
    figures = _capture_figure(monkeypatch)
    title = "spos search on coco128: shipped the derived architecture"
    path = plot_pareto(_evaluated("loss"), 125.0, 100.0, PICK, tmp_path / "alpha.png", base=BASE, title=title)
    _assert_png(path)
    ax = figures[0].axes[0]
    assert ax.get_title() == title
    assert ax.get_xlabel() == "cost / base model cost"
    assert ax.get_ylabel() == "held-out loss per image (lower is better)"
    budget = [line for line in ax.lines if line.get_linestyle() == "--"]
    assert len(budget) == 1 and list(budget[0].get_xdata()) == [1.25, 1.25]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["evaluated", "budget", "Pareto front", "base", "pick"]
    front = [line for line in ax.lines if line.get_label() == "Pareto front"]
    assert list(front[0].get_xdata()) == pytest.approx([1.0, 1.1, 1.2, 1.3, 1.4])  # each costlier one has a lower loss here
    # base at cost 100 / 100 with loss 2.0; the pick is the second record: cost 1.1, loss 1.9
    offsets = {name: tuple(collection.get_offsets()[0]) for name, collection in zip(("evaluated", "base", "pick"), ax.collections)}
    assert offsets["base"] == pytest.approx((1.0, 2.0))
    assert offsets["pick"] == pytest.approx((1.1, 1.9))


def test_plot_pareto_with_legacy_fitness_and_no_base(tmp_path, monkeypatch):
    figures = _capture_figure(monkeypatch)
    path = plot_pareto(_evaluated("fitness"), 125.0, 100.0, PICK, tmp_path / "legacy.png")
    _assert_png(path)
    ax = figures[0].axes[0]
    assert "fitness" in ax.get_ylabel() and "higher is better" in ax.get_ylabel()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["evaluated", "budget", "Pareto front", "pick"]
    assert plot_pareto([], 125.0, 100.0, PICK, tmp_path / "empty.png") is None


def _report() -> dict:
    val = {"map50": 0.41, "map": 0.25}
    return {
        "strategy": "proxyless",
        "dataset": {"yaml": "coco128.yaml", "train_part": 103, "holdout": 25, "val": 128},
        "epochs": 5, "img_size": 320, "batch_size": 8, "width": 0.25, "depth": 0.33, "device": "cpu",
        "cost_model": {"measure": "flops", "unit": "FLOPs", "source": "counted"},
        "budget": {"limit": 1.2e9, "limit_ratio_to_base": 1.0, "lightweight_level": None},
        "derived": {"architecture": dict(PICK), "cost": 1.1e9, "cost_ratio": 0.917, "val": val},
        "base": {"architecture": dict(BASE), "cost": 1.2e9, "cost_ratio": 1.0, "val": {"map50": 0.40, "map": 0.24}},
        "probabilities": _history()[-1]["alpha"],
        "spos": None,
        "seconds": {"total": 12.5, "training": 10.0},
    }


DECISION = {
    "shipped": "base",
    "searched": dict(PICK),
    "reason": "the searched architecture did not beat the base on the held-out images",
    "confirmation": {
        "objective": "detection loss", "images": 25, "derived_loss": 1.23456, "base_loss": 1.2,
        "mean_difference": 0.03456, "ci_low": -0.01234, "ci_high": 0.08125,
        "confidence": 0.95, "resamples": 2000, "beaten": False,
    },
}


def test_markdown_decision_section():
    report = {**_report(), "decision": copy.deepcopy(DECISION)}
    text = markdown_report(report)
    assert "## Decision" in text
    assert "- shipped: **base** (the base architecture)" in text
    assert "- reason: the searched architecture did not beat the base on the held-out images" in text
    assert "- searched architecture: m_16 k3_relu, m_21 k3_mish, m_25 k3_leaky, m_29 k3_mish" in text
    assert "detection loss per image" in text
    assert "| 25 | 1.235 | 1.2 | +0.03456 | [-0.01234, +0.08125] | 95% (2000 bootstrap resamples) |" in text
    assert "Derived beats base: no." in text
    # the searched architecture differs from the base and was not shipped: the table says so
    assert "| searched (not shipped) | k3_relu | k3_mish | k3_leaky | k3_mish |" in text
    assert "| base (shipped) | k3_mish |" in text
    # the decision comes before the architecture table, the other sections are kept
    assert text.index("## Decision") < text.index("| architecture |")
    assert "Final candidate probabilities:" in text and "Wall time: 12.5 s" in text


def test_markdown_decision_shipping_derived_and_no_confirmation():
    shipped = {**DECISION, "shipped": "derived", "reason": "beaten at 95%",
               "confirmation": {**DECISION["confirmation"], "mean_difference": -0.05, "ci_low": -0.09, "ci_high": -0.01, "beaten": True}}
    text = markdown_report({**_report(), "decision": shipped})
    assert "- shipped: **derived** (the searched architecture)" in text
    assert "| shipped (searched) | k3_relu |" in text
    assert "[-0.09, -0.01]" in text and "Derived beats base: yes." in text

    same = {"shipped": "base", "searched": dict(BASE), "reason": "the search derived the base architecture", "confirmation": None}
    report = {**_report(), "decision": same}
    report["derived"] = {**report["base"]}
    text = markdown_report(report)
    assert "confirmation: none needed" in text and "| images |" not in text
    assert "| shipped | k3_mish |" in text


def test_markdown_without_decision_still_renders():
    text = markdown_report(_report())
    assert "## Decision" not in text
    assert text.startswith("# Neck search: proxyless")
    assert "| derived | k3_relu | k3_mish | k3_leaky | k3_mish |" in text
    assert "| base | k3_mish | k3_mish | k3_mish | k3_mish |" in text


@pytest.mark.parametrize("score, wording", [("loss", "scored by held-out loss per image (lower is better)"),
                                            ("fitness", "scored by held-out fitness (0.1 mAP50 + 0.9 mAP50-95)")])
def test_markdown_spos_line_names_the_score(score, wording):
    report = {**_report(), "strategy": "spos", "probabilities": None,
              "spos": {"mode": "evolution", "evaluated": 5, "top": _evaluated(score)}}
    text = markdown_report(report)
    assert f"spos: evolution search, 5 architectures {wording} on the held-out images after BN recalibration." in text


def test_markdown_pareto_section_lists_the_levels_and_the_front():
    points = [{"architecture": dict(BASE), "cost": 100.0, "cost_ratio": 1.0, "loss": 1.5, "within_budget": False, "marks": ["base", "level 0"], "front": True},
              {"architecture": dict(PICK), "cost": 80.0, "cost_ratio": 0.8, "loss": 1.6, "within_budget": True, "marks": ["shipped", "level 5"], "front": True},
              {"architecture": {**PICK, "m_29": "k3_relu"}, "cost": 90.0, "cost_ratio": 0.9, "loss": 1.7, "within_budget": True, "marks": [], "front": False}]
    levels = [{"level": level, "limit_ratio": 1 - 0.02 * level, "architecture": dict(BASE if level < 5 else PICK),
               "cost_ratio": 1.0 if level < 5 else 0.8, "loss": 1.5 if level < 5 else 1.6} for level in range(11)]
    report = {**_report(), "pareto": {"score": "held-out loss per image", "images": 12, "points": points, "levels": levels},
              "files": {"plots": {"pareto": "/run/pareto.png"}}}
    text = markdown_report(report).split("## Cost and held-out loss", 1)[1]
    assert "3 architectures scored on 12 held-out images (held-out loss per image); plot: pareto.png" in text
    assert "| 0 | 1.000 | k3_mish k3_mish k3_mish k3_mish | 1.000 | 1.5 |" in text
    assert "| 10 | 0.800 | k3_relu k3_mish k3_leaky k3_mish | 0.800 | 1.6 |" in text
    assert "| k3_relu k3_mish k3_leaky k3_mish | 0.800 | 1.6 | yes | shipped, level 5 |" in text
    assert "k3_relu k3_mish k3_leaky k3_relu" not in text  # neither on the front nor the base or the shipped one
