"""The search's human-facing outputs: report.json, report.md, alpha.png (candidate probabilities per
block over the epochs; for spos, which has none, the score against the cost of every evaluated
architecture, with the budget line)."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Mapping, Sequence

from autonn_nas.models.search_space import CANDIDATES
from autonn_nas.utils.files import atomic_write_bytes, atomic_write_json, atomic_write_text


def _figure_bytes(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def plot_alpha(history: Sequence[Mapping[str, Any]], path: str | Path) -> Path | None:
    """One panel per searchable block: each candidate's probability after every epoch (epoch 0 = start)."""
    rows = [row for row in history if row.get("alpha")]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(rows[0]["alpha"])
    fig, axes = plt.subplots(1, len(labels), figsize=(4 * len(labels), 3.4), sharey=True, squeeze=False)
    epochs = [row["epoch"] + 1 for row in rows]
    for ax, label in zip(axes[0], labels):
        for name in CANDIDATES:
            ax.plot(epochs, [row["alpha"][label][name] for row in rows], marker="o", markersize=3, label=name,
                    linestyle="-" if name.startswith("k3") else "--")
        ax.set_title(label)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("probability")
    axes[0][-1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    data = _figure_bytes(fig)
    plt.close(fig)
    return atomic_write_bytes(path, data)


def plot_spos_scores(evaluated: Sequence[Mapping[str, Any]], budget_limit: float, base_cost: float, chosen: Mapping[str, str], path: str | Path) -> Path | None:
    if not evaluated:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    costs = [e["cost"] / base_cost for e in evaluated]
    scores = [e["fitness"] for e in evaluated]
    ax.scatter(costs, scores, s=14, alpha=0.7, label="evaluated")
    for e in evaluated:
        if e["architecture"] == dict(chosen):
            ax.scatter([e["cost"] / base_cost], [e["fitness"]], s=60, marker="*", color="red", label="chosen")
    ax.axvline(budget_limit / base_cost, color="gray", linestyle="--", label="budget")
    ax.set_xlabel("cost / base model cost")
    ax.set_ylabel("held-out fitness (0.1 mAP50 + 0.9 mAP50-95)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    data = _figure_bytes(fig)
    plt.close(fig)
    return atomic_write_bytes(path, data)


def _fmt(value: Any, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else "-"


def markdown_report(report: Mapping[str, Any]) -> str:
    derived, base, budget = report["derived"], report["base"], report["budget"]
    unit = report["cost_model"]["unit"]
    lines = [
        f"# Neck search: {report['strategy']}",
        "",
        f"- dataset: {report['dataset']['yaml']} (weights on {report['dataset']['train_part']} train images, "
        f"architecture on {report['dataset']['holdout']} held-out train images, report on {report['dataset']['val']} val images)",
        f"- run: {report['epochs']} epochs at {report['img_size']} px, batch {report['batch_size']}, width {report['width']}, depth {report['depth']}, on {report['device']}",
        f"- cost measure: {report['cost_model']['measure']} ({report['cost_model']['source']})",
        f"- budget: {budget['limit']:,.6g} {unit} = {_fmt(budget['limit_ratio_to_base'], 3)} x base"
        + (f" (lightweight_level {budget['lightweight_level']})" if budget.get("lightweight_level") is not None else ""),
        "",
        "| architecture | " + " | ".join(derived["architecture"]) + f" | cost ({unit}) | cost / base | val mAP50 | val mAP50-95 |",
        "|---|" + "---|" * (len(derived["architecture"]) + 4),
    ]
    for name, entry in (("derived", derived), ("base", base)):
        lines.append(
            f"| {name} | " + " | ".join(entry["architecture"].values())
            + f" | {entry['cost']:,.6g} | {_fmt(entry['cost_ratio'], 3)} | {_fmt(entry['val'].get('map50'))} | {_fmt(entry['val'].get('map'))} |"
        )
    lines += ["", "Both rows are evaluated the same way: supernet weights, batch-norm recalibrated on the training part."]
    if report.get("probabilities"):
        lines += ["", "Final candidate probabilities:", "", "| block | " + " | ".join(CANDIDATES) + " |", "|---|" + "---|" * len(CANDIDATES)]
        for label, probs in report["probabilities"].items():
            lines.append(f"| {label} | " + " | ".join(f"{probs[name]:.3f}" for name in CANDIDATES) + " |")
    if report.get("spos"):
        spos = report["spos"]
        lines += ["", f"spos: {spos['mode']} search, {spos['evaluated']} architectures scored on the held-out images after BN recalibration."]
    lines += ["", f"Wall time: {report['seconds']['total']:.1f} s (supernet training {report['seconds']['training']:.1f} s).", ""]
    return "\n".join(lines)


def write_reports(out: Path, report: Mapping[str, Any]) -> tuple[Path, Path]:
    return atomic_write_json(out / "report.json", report), atomic_write_text(out / "report.md", markdown_report(report))
