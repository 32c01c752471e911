"""The search's human-facing outputs: report.json, report.md, alpha.png (candidate probabilities per
block over the epochs; spos has none) and pareto.png (held-out loss against cost of the architectures the
search scored or sampled, search/pareto.py, with the Pareto front, the budget line, the base and the pick)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from autonn_nas.models.search_space import CANDIDATES
from autonn_nas.utils.files import atomic_write_json, atomic_write_text
from autonn_nas.utils.plots import pyplot, save_figure

# One fixed colour per candidate, so a candidate looks the same in every block's panel and in the one
# shared legend; 3x3 solid, 5x5 dashed, so the kernel size reads at a glance. The seed's six have their
# own colours; the extended space's others take matplotlib's 20-colour cycle.
_COLOURS = dict(zip(CANDIDATES, ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")))
SHOWN_CANDIDATES = 8  # a larger space shows, per block, only the candidates that ever came this far up (the rest faint)


def _colour(name: str, names: Sequence[str]) -> str:
    if name in _COLOURS:
        return _COLOURS[name]
    return f"C{names.index(name) % 10}" if name in names else "gray"


def _style(name: str, names: Sequence[str] = CANDIDATES) -> dict[str, Any]:
    return {"color": _colour(name, names), "linestyle": "-" if name.startswith("k3") else "--"}


def _prominent(rows: Sequence[Mapping[str, Any]], labels: Sequence[str], names: Sequence[str]) -> list[str]:
    """The candidates a plot or table names: all of a small space, else those that reach the highest
    probabilities in any block at any epoch (at most SHOWN_CANDIDATES), in the space's order."""
    if len(names) <= SHOWN_CANDIDATES:
        return list(names)
    peak = {name: max(row["alpha"][label].get(name, 0.0) for row in rows for label in labels) for name in names}
    top = set(sorted(names, key=lambda name: -peak[name])[:SHOWN_CANDIDATES])
    return [name for name in names if name in top]


def plot_alpha(history: Sequence[Mapping[str, Any]], path: str | Path, pick: Mapping[str, str] | None = None,
               title: str = "") -> Path | None:
    """One panel per searchable block: each candidate's probability over the epochs (x = 0 is the start,
    the row with epoch -1; epoch e is drawn at x = e + 1). `pick` ({label: candidate}, what the search
    shipped) is drawn thick with a star on its last point; candidates at probability 0 in every row (masked
    out, e.g. by the budget) are drawn faint and dotted. Returns None when the history has no probabilities."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    rows = [row for row in history if row.get("alpha")]
    if not rows:
        return None
    plt = pyplot()
    pick = dict(pick or {})
    labels = list(rows[0]["alpha"])
    names = list(rows[0]["alpha"][labels[0]])  # the space's candidates, in its order
    shown = _prominent(rows, labels, names)
    xs = [row["epoch"] + 1 for row in rows]
    # A candidate masked in every block is named so in the legend; one masked in some blocks only is just faint there.
    masked_everywhere = {name for name in shown
                         if all(row["alpha"][label].get(name, 0.0) == 0.0 for row in rows for label in labels)}

    fig, axes = plt.subplots(1, len(labels), figsize=(3.6 * len(labels) + 0.6, 3.9), sharey=True, squeeze=False,
                             layout="constrained")
    for ax, label in zip(axes[0], labels):
        picked = pick.get(label)
        for name in names:
            ys = [row["alpha"][label].get(name, 0.0) for row in rows]
            if all(y == 0.0 for y in ys) or (name not in shown and name != picked):
                ax.plot(xs, ys, linewidth=0.8, alpha=0.3, **{**_style(name, names), "linestyle": ":"})
                continue
            thick = name == picked
            ax.plot(xs, ys, marker="o", markersize=2.5, linewidth=2.8 if thick else 1.2, zorder=3 if thick else 2, **_style(name, names))
            if thick:
                ax.plot(xs[-1:], ys[-1:], marker="*", markersize=15, color=_colour(name, names),
                        markeredgecolor="black", zorder=4, linestyle="none")
        ax.set_title(f"{label}: pick {picked}" if picked else label, fontsize=10)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("probability")

    # One legend for the figure (not per panel): every candidate, masked ones said so, and the pick marker.
    handles = [Line2D([], [], linewidth=1.5, label=f"{name} (masked out)" if name in masked_everywhere else name,
                      alpha=0.4 if name in masked_everywhere else 1.0, **_style(name, names)) for name in shown]
    if len(shown) < len(names):
        handles.append(Line2D([], [], linewidth=0.8, color="gray", alpha=0.4, linestyle=":",
                              label=f"{len(names) - len(shown)} others (faint)"))
    if pick:
        handles.append(Line2D([], [], marker="*", markersize=12, color="gray", markeredgecolor="black", linestyle="none",
                              label="pick (shipped)"))
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 7), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def _score_key(records: Sequence[Mapping[str, Any]]) -> str:
    """spos records score by held-out loss per image ("loss", lower is better); older ones only have
    "fitness" (higher is better)."""
    return "loss" if records and all("loss" in r for r in records) else "fitness"


_SCORE_AXIS = {"loss": "held-out loss per image (lower is better)",
               "fitness": "held-out fitness (0.1 mAP50 + 0.9 mAP50-95, higher is better)"}


def plot_pareto(points: Sequence[Mapping[str, Any]], budget_limit: float, base_cost: float, chosen: Mapping[str, str],
                path: str | Path, base: Mapping[str, str] | None = None, title: str = "") -> Path | None:
    """Held-out score of every scored architecture (spos's evaluated, or pareto.py's points) against its cost /
    base cost, with the budget as a dashed line, the Pareto front (no point is both cheaper and better) as a
    step line, the base architecture as a black square and the chosen one as a red star."""
    key = _score_key(points)
    records = [e for e in points if key in e]
    if not records:
        return None
    plt = pyplot()
    # Costs relative to the base model read the same whatever the measure; without a base cost show raw cost.
    relative = bool(base_cost and base_cost > 0)
    scale = base_cost if relative else 1.0

    def point(arch: Mapping[str, str] | None) -> tuple[float, float] | None:
        wanted = dict(arch) if arch is not None else None
        for e in records:  # the first match: an architecture is scored once, and one legend entry is enough
            if wanted is not None and dict(e["architecture"]) == wanted:
                return e["cost"] / scale, e[key]
        return None

    fig, ax = plt.subplots(figsize=(6.4, 4.4), layout="constrained")
    ax.scatter([e["cost"] / scale for e in records], [e[key] for e in records], s=14, alpha=0.6, label="evaluated")
    ax.axvline(budget_limit / scale, color="gray", linestyle="--", label="budget")
    front, best = [], None
    for e in sorted(records, key=lambda e: (e["cost"], e[key] if key == "loss" else -e[key])):
        if best is None or (e[key] < best if key == "loss" else e[key] > best):
            front.append((e["cost"] / scale, e[key]))
            best = e[key]
    if len(front) > 1:
        ax.step(*zip(*front), where="post", color="tab:green", linewidth=1.0, alpha=0.8, label="Pareto front")
    same = base is not None and dict(base) == dict(chosen)  # the base shipped: one label, not two on top of each other
    for arch, name, style in ((base, "base", {"marker": "s", "s": 60, "color": "black"}),
                              (chosen, "pick", {"marker": "*", "s": 160, "color": "red"})):
        xy = point(arch)
        if xy is not None:
            ax.scatter([xy[0]], [xy[1]], label=name, zorder=3, edgecolors="black", linewidths=0.6, **style)
            if not (same and name == "base"):
                ax.annotate("pick = base" if same else name, xy, xytext=(6, 6), textcoords="offset points", fontsize=8)
    ax.set_xlabel("cost / base model cost" if relative else "cost")
    ax.set_ylabel(_SCORE_AXIS[key])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return save_figure(fig, path)


def _fmt(value: Any, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else "-"


def _sig(value: Any, signed: bool = False) -> str:
    """4 significant digits: loss differences are often far below 0.0001 of a loss near 1."""
    if not isinstance(value, (int, float)):
        return "-"
    return f"{value:+.4g}" if signed else f"{value:.4g}"


def _row_names(report: Mapping[str, Any]) -> tuple[str, str]:
    """Names of the table's two rows (report["derived"], report["base"]): "derived"/"base" without a
    decision; with one, which of them was shipped."""
    decision = report.get("decision")
    if not decision:
        return "derived", "base"
    if decision.get("shipped") == "base":
        # report["derived"] may still hold the searched architecture: say plainly it was not shipped
        if dict(report["derived"]["architecture"]) != dict(report["base"]["architecture"]):
            return "searched (not shipped)", "base (shipped)"
        return "shipped", "base"
    return "shipped (searched)", "base"


def _decision_lines(decision: Mapping[str, Any]) -> list[str]:
    shipped = decision.get("shipped")
    what = {"derived": "the searched architecture", "base": "the base architecture"}.get(shipped, "")
    lines = ["", "## Decision", "", f"- shipped: **{shipped}**" + (f" ({what})" if what else ""),
             f"- reason: {decision.get('reason') or '-'}"]
    if decision.get("searched"):
        lines.append("- searched architecture: " + ", ".join(f"{label} {name}" for label, name in decision["searched"].items()))
    check = decision.get("confirmation")
    if check is None:
        # the schema's None: the searched architecture is the base one, or the base does not fit the budget
        lines.append("- confirmation: none, the base architecture is over the budget" if decision.get("base_over_budget")
                     else "- confirmation: none needed, the searched architecture is the base architecture")
        return lines
    confidence = check.get("confidence")
    level = f"{confidence:.0%}" if isinstance(confidence, (int, float)) else "-"
    lines += [
        "",
        f"Confirmation on the held-out images ({check.get('objective', '-')} per image; difference = derived - base, "
        "negative = derived better):",
        "",
        "| images | derived loss | base loss | difference | interval | confidence |",
        "|---|---|---|---|---|---|",
        f"| {check.get('images', '-')} | {_sig(check.get('derived_loss'))} | {_sig(check.get('base_loss'))} "
        f"| {_sig(check.get('mean_difference'), signed=True)} "
        f"| [{_sig(check.get('ci_low'), signed=True)}, {_sig(check.get('ci_high'), signed=True)}] "
        f"| {level} ({check.get('resamples', '-')} bootstrap resamples) |",
        "",
        f"Derived beats base: {'yes' if check.get('beaten') else 'no'}.",
    ]
    return lines


def _probability_lines(probabilities: Mapping[str, Mapping[str, float]]) -> list[str]:
    names = list(next(iter(probabilities.values())))
    if len(names) <= SHOWN_CANDIDATES:
        lines = ["", "Final candidate probabilities:", "", "| block | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        return lines + [f"| {label} | " + " | ".join(f"{probs[name]:.3f}" for name in names) + " |" for label, probs in probabilities.items()]
    lines = ["", f"Final candidate probabilities (the {SHOWN_CANDIDATES // 2} most probable of {len(names)} per block):", "",
             "| block | candidates |", "|---|---|"]
    for label, probs in probabilities.items():
        top = sorted(names, key=lambda name: -probs[name])[: SHOWN_CANDIDATES // 2]
        lines.append(f"| {label} | " + ", ".join(f"{name} {probs[name]:.3f}" for name in top) + " |")
    return lines


def _arch_text(arch: Mapping[str, str] | None) -> str:
    return " ".join(arch.values()) if arch else "-"


PARETO_ROWS = 16  # report.md lists the Pareto front, the base and the shipped architecture, at most this many


def _pareto_lines(pareto: Mapping[str, Any], plot: str | None) -> list[str]:
    lines = ["", "## Cost and held-out loss", "",
             f"{len(pareto['points'])} architectures scored on {pareto['images']} held-out images ({pareto['score']})"
             + (f"; plot: {Path(plot).name}" if plot else "") + ". What each lightweight_level derives from this supernet:", "",
             "| lightweight_level | budget / base | derived | cost / base | held-out loss |", "|---|---|---|---|---|"]
    for pick in pareto["levels"]:
        lines.append(f"| {pick['level']} | {_fmt(pick['limit_ratio'], 3)} | {_arch_text(pick['architecture'])} "
                     f"| {_fmt(pick['cost_ratio'], 3)} | {_sig(pick.get('loss'))} |")
    shown = [p for p in pareto["points"] if p.get("front") or {"base", "shipped"} & set(p.get("marks", []))][:PARETO_ROWS]
    lines += ["", "Pareto front (no other architecture is both cheaper and better), the base and the shipped one:", "",
              "| architecture | cost / base | held-out loss | within budget | |", "|---|---|---|---|---|"]
    for p in shown:
        lines.append(f"| {_arch_text(p['architecture'])} | {_fmt(p['cost_ratio'], 3)} | {_sig(p['loss'])} "
                     f"| {'yes' if p['within_budget'] else 'no'} | {', '.join(p.get('marks', []))} |")
    return lines


def markdown_report(report: Mapping[str, Any]) -> str:
    derived, base, budget = report["derived"], report["base"], report["budget"]
    unit = report["cost_model"]["unit"]
    lines = [
        f"# Neck search: {report['strategy']}",
        "",
        f"- dataset: {report['dataset']['yaml']} (weights on {report['dataset']['train_part']} train images, "
        f"architecture on {report['dataset']['holdout']} held-out train images, "
        + (f"confirmation against the base on {report['dataset']['confirmation']} others, " if report["dataset"].get("confirmation") else "")
        + f"report on {report['dataset']['val']} val images)",
        f"- run: {report['epochs']} epochs at {report['img_size']} px, batch {report['batch_size']}, width {report['width']}, "
        f"depth {report['depth']}, on {report['device']}",
        f"- cost measure: {report['cost_model']['measure']} ({report['cost_model']['source']})",
        f"- budget: {budget['limit']:,.6g} {unit} = {_fmt(budget['limit_ratio_to_base'], 3)} x base"
        + (f" (lightweight_level {budget['lightweight_level']})" if budget.get("lightweight_level") is not None else ""),
    ]
    if report.get("decision"):  # first after the settings: what was shipped is what a reader wants to know
        lines += _decision_lines(report["decision"])
    lines += [
        "",
        "| architecture | " + " | ".join(derived["architecture"]) + f" | cost ({unit}) | cost / base | val mAP50 | val mAP50-95 |",
        "|---|" + "---|" * (len(derived["architecture"]) + 4),
    ]
    for name, entry in zip(_row_names(report), (derived, base)):
        lines.append(
            f"| {name} | " + " | ".join(entry["architecture"].values())
            + f" | {entry['cost']:,.6g} | {_fmt(entry['cost_ratio'], 3)} | {_fmt(entry['val'].get('map50'))} | {_fmt(entry['val'].get('map'))} |"
        )
    lines += ["", "Both rows are evaluated the same way: supernet weights, batch-norm recalibrated on the training part."]
    lines += _retrain_lines(report)
    if report.get("probabilities"):
        lines += _probability_lines(report["probabilities"])
    if report.get("spos"):
        spos = report["spos"]
        score = ("by held-out loss per image (lower is better)" if _score_key(spos.get("top") or []) == "loss"
                 else "by held-out fitness (0.1 mAP50 + 0.9 mAP50-95)")
        lines += ["", f"spos: {spos['mode']} search, {spos['evaluated']} architectures scored {score} on the held-out images after BN recalibration."]
    if report.get("pareto"):
        lines += _pareto_lines(report["pareto"], report.get("files", {}).get("plots", {}).get("pareto"))
    if report.get("stage_inputs"):  # set by the stage: what the project manager's project_info.yaml keys did
        lines += ["", "## Project inputs", "", *(f"- {note}" for note in report["stage_inputs"])]
    retrain_time = f"; then the retrain {report['seconds']['retrain']:.1f} s" if "retrain" in report["seconds"] else ""
    lines += ["", f"Wall time: {report['seconds']['total']:.1f} s (supernet training {report['seconds']['training']:.1f} s){retrain_time}.", ""]
    return "\n".join(lines)


def _retrain_lines(report: Mapping[str, Any]) -> list[str]:
    retrain = report.get("retrain")
    if not retrain:
        return ["", "No retrain (retrain_epochs 0): bestmodel.pt holds these inherited weights."]
    images = f" on {retrain['train_images']} train images" if retrain.get("train_images") else ""
    before, after, base = retrain["inherited"], retrain["val"], report["base"]["val"]
    return [
        "", "## Retrain", "",
        f"The shipped architecture, fine-tuned from its inherited weights for {retrain['epochs']} epochs with the training "
        f"recipe{images} (as `autonn-nas train --weights` does; per epoch: {retrain['results']}). bestmodel.pt holds the "
        "last epoch's moving average.", "",
        "| model | val mAP50 | val mAP50-95 |", "|---|---|---|",
        f"| shipped, inherited weights (before the retrain) | {_fmt(before.get('map50'))} | {_fmt(before.get('map'))} |",
        f"| shipped, after {retrain['epochs']} retrain epochs | {_fmt(after.get('map50'))} | {_fmt(after.get('map'))} |",
        f"| base architecture, inherited weights | {_fmt(base.get('map50'))} | {_fmt(base.get('map'))} |",
    ]


def val_summary(metrics: Mapping[str, Any]) -> str:
    """One line of a search's val figures (its result's metrics): before and after the retrain, and the base's."""
    base = f"base architecture, inherited: {_fmt(metrics.get('base_map50'))} / {_fmt(metrics.get('base_map'))}"
    epochs = metrics.get("retrain_epochs") or 0
    if not epochs:
        return f"val mAP50 / mAP50-95: {_fmt(metrics.get('map50'))} / {_fmt(metrics.get('map'))} (inherited weights, no retrain; {base})"
    return (f"val mAP50 / mAP50-95: {_fmt(metrics.get('map50'))} / {_fmt(metrics.get('map'))} after {epochs} retrain epochs "
            f"(inherited weights: {_fmt(metrics.get('inherited_map50'))} / {_fmt(metrics.get('inherited_map'))}; {base})")


def write_reports(out: Path, report: Mapping[str, Any]) -> tuple[Path, Path]:
    return atomic_write_json(out / "report.json", report), atomic_write_text(out / "report.md", markdown_report(report))


def add_stage_inputs(report_json: Path | None, notes: Sequence[str]) -> None:
    """Record in a finished search's report.json and report.md what the stage made of the project's inputs
    (nothing when the search wrote no report)."""
    if report_json is None or not Path(report_json).is_file():
        return
    report = json.loads(Path(report_json).read_text())
    report["stage_inputs"] = list(notes)
    write_reports(Path(report_json).parent, report)
