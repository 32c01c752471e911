"""The lightweight_level knob on a real dataset (issue 15): for each cost measure (parameters, FLOPs, and latency
from a table that `autonn-nas latency-table` measures on this machine), one search of the extended space at
lightweight_level 0, then what each level derives from that trained supernet: its cost / the base's and its
held-out loss (the report's `pareto.levels`: every level's budget is a subset of the previous level's, so the
derived cost never rises with the level).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/knob.py                      # coco128, small width: ~15 min on 1 CPU thread
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/knob.py --epochs 1 --img 96  # a quick look

Writes <out>/knob.json (every level 0..10 of every measure, the runs' settings), <out>/knob.md (the table of the
levels asked for), <out>/latency_table.json and each run's pareto.png as <out>/pareto_<measure>.png; the run
folders go to --runs.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from search_cost import portable  # noqa: E402  (benchmarks/ beside this file)

MEASURES = ("params", "flops", "latency")
DEFAULT_DATA = ROOT.parent / "shared" / "datasets" / "coco128" / "dataset.yaml"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--cfg", default="yolov4-p5-search-ext.yaml")
    parser.add_argument("--strategy", default="proxyless")
    parser.add_argument("--img", type=int, default=160)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--depth", type=float, default=0.67, help="0.67: the blocks choose 2 or 1 bottlenecks (0.33: always 1)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--levels", type=int, nargs="+", default=[0, 3, 5, 8, 10])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "knob"), help="the table, the latency table, the plots")
    parser.add_argument("--runs", default=str(ROOT / "runs" / "knob"), help="the search run folders (checkpoints: hundreds of MB)")
    args = parser.parse_args(argv)

    from autonn_nas.cli import main as cli
    from autonn_nas.search.runner import run_search
    from autonn_nas.search.settings import SearchSettings

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sizes = ["--cfg", args.cfg, "--img", str(args.img), "--width", str(args.width), "--depth", str(args.depth)]
    table = out / "latency_table.json"
    started = time.perf_counter()
    if cli(["latency-table", "-o", str(table), *sizes, "--device", "cpu"]) != 0:
        return 1
    seconds = {"latency_table": time.perf_counter() - started}
    runs = {}
    for measure in MEASURES:
        started = time.perf_counter()
        settings = SearchSettings(data=args.data, cfg=args.cfg, out=str(Path(args.runs) / measure), strategy=args.strategy, epochs=args.epochs,
                                  img_size=args.img, batch_size=args.batch, width=args.width, depth=args.depth, workers=2, device="cpu",
                                  cost_measure=measure, latency_table=str(table) if measure == "latency" else None,
                                  lightweight_level=0, progress=False)
        result = run_search(settings)
        seconds[measure] = time.perf_counter() - started
        report = json.loads(result.report.read_text())
        shutil.copyfile(result.out_dir / "pareto.png", out / f"pareto_{measure}.png")
        runs[measure] = {"levels": report["pareto"]["levels"], "source": report["cost_model"]["source"],
                         "scored_images": report["pareto"]["images"], "shipped": report["derived"]["architecture"]}
    runs = portable(runs)  # the latency table's path is in each run's cost source
    record = portable({"settings": vars(args), "seconds": seconds, "runs": runs})
    (out / "knob.json").write_text(json.dumps(record, indent=2) + "\n")
    (out / "knob.md").write_text(markdown(runs, args.levels))
    print(markdown(runs, args.levels))
    return 0


def markdown(runs: dict, levels: list[int]) -> str:
    head = "| lightweight_level | " + " | ".join(f"{m}: cost / base | {m}: held-out loss" for m in runs) + " |"
    lines = [head, "|---|" + "---|---|" * len(runs)]
    for level in levels:
        cells = []
        for run in runs.values():
            pick = run["levels"][level]
            loss = f"{pick['loss']:.4f}" if pick.get("loss") is not None else "-"
            cells += [f"{pick['cost_ratio']:.3f}" if pick["cost_ratio"] is not None else "-", loss]
        lines.append(f"| {level} | " + " | ".join(cells) + " |")
    ratios = {m: [pick["cost_ratio"] for pick in run["levels"] if pick["cost_ratio"] is not None] for m, run in runs.items()}
    monotone = {m: all(a >= b for a, b in zip(values, values[1:])) for m, values in ratios.items()}
    lines += ["", "Derived cost never increases with the level (all 11 levels): "
              + ", ".join(f"{m} {'yes' if ok else 'NO'}" for m, ok in monotone.items()), ""]
    lines += [f"- {m}: {run['source']}; shipped at level 0: {' '.join(run['shipped'].values())}" for m, run in runs.items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
