"""GPU smoke check: what the CPU tests cannot show, in one short run on one GPU (at most 8 minutes).

    bash benchmarks/gpu_smoke.sh                  # on a machine with CUDA: full size (width/depth 1.0), 640 px, AMP
    bash benchmarks/gpu_smoke.sh --dry-run        # on a CPU: tiny sizes, the same code paths (the test suite runs this)

Parts, each reported in one table at the end (and as JSON with --json FILE):
1. step: one training step of the plain base network and of the supernet under each strategy, each configuration
   in a fresh process: the real training loop (train/epoch.train_one_epoch: AMP, accumulation, clipping, EMA) over
   in-memory batches, timed between two device synchronisations, and its peak device memory; the architecture step
   of proxyless and darts timed on its own.
2. search: a short proxyless search on a real dataset (coco128) at the default GPU sizes, end to end.
3. probe: the batch-size probe with the device's memory capped by a ballast tensor (what another process would
   hold): the batch it fits, its peak (the optimizer's momentum counted), and the peak of a real epoch at that
   batch, which must stay within the cap.
4. oom: after the probe, the ballast grows so that the fitted batch no longer fits: the epoch runs out of memory,
   the batch is halved and the epoch runs again.
5. export: part 2's bestmodel.pt exported with --half (fp16) to TorchScript and ONNX, each checked against PyTorch.

On a CPU (--dry-run) parts 3-5 run what a CPU can (the probe step itself; fp32 exports) and say what they skipped.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from search_cost import synthetic_batch  # noqa: E402  (benchmarks/ beside this file)

CONFIGS = ("plain", "proxyless", "darts", "spos")
GIB = 2**30


def full_sizes(args: argparse.Namespace) -> dict[str, Any]:
    if args.dry_run:
        return dict(width=0.25, depth=0.33, img=64, batch=2, steps=2, warmup=1, arch_steps=1, device="cpu")
    return dict(width=1.0, depth=1.0, img=640, batch=args.batch, steps=args.steps, warmup=3, arch_steps=3, device="cuda")


def _peak_memory_gib(device: Any) -> float:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / GIB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB -> GiB (the process's RSS)


def _synthetic_batches(n: int, batch: int, img: int, seed: int = 1) -> list:
    """n batches as the loader yields them (uint8 images, pinned on CUDA machines): search_cost's synthetic batch."""
    import torch

    images, targets = synthetic_batch(batch, img, seed)
    images = (images * 255).to(torch.uint8)
    if torch.cuda.is_available():
        images, targets = images.pin_memory(), targets.pin_memory()
    return [(images, targets, [], []) for _ in range(n)]


# -- part 1: one configuration's training step, in its own process ------------------------------------------

def step_worker(config: str, sizes: dict[str, Any]) -> dict[str, Any]:
    import torch

    from autonn_nas.models.yolo import build_model
    from autonn_nas.search.cost import counted_cost_table, resolve_budget
    from autonn_nas.search.strategies import strategy_class
    from autonn_nas.train.ema import ModelEMA
    from autonn_nas.train.epoch import images_to_input, make_grad_scaler, train_one_epoch
    from autonn_nas.train.hyp import merge_hyp
    from autonn_nas.train.loss import DetectionLoss, scaled_loss_gains
    from autonn_nas.train.optim import build_optimizer
    from autonn_nas.train.schedule import WarmupCosineSchedule

    device = torch.device(sizes["device"])
    torch.manual_seed(0)
    cfg = "yolov4-p5.yaml" if config == "plain" else "yolov4-p5-search.yaml"
    model = build_model(cfg, nc=80, width=sizes["width"], depth=sizes["depth"]).to(device).train()
    hyp = merge_hyp()
    loss_fn = DetectionLoss(model, scaled_loss_gains(hyp, 80, 3, sizes["img"]))
    optimizer = build_optimizer(model, hyp, sizes["batch"])
    scaler = make_grad_scaler(device)
    ema = ModelEMA(model)
    strategy = None
    if config != "plain":
        table = counted_cost_table(model, sizes["img"], "flops")
        strategy = strategy_class(config)(model, loss_fn, table, resolve_budget(table), seed=0, autocast=device.type == "cuda")
        strategy.set_arch_lr(1e-3)
    hook = strategy.prepare_weight_step if strategy is not None else None

    def epoch(batches: list, index: int) -> float:
        schedule = WarmupCosineSchedule(optimizer, dict(hyp, warmup_epochs=0.0), 100, len(batches), sizes["batch"])
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        train_one_epoch(model, batches, loss_fn, optimizer, schedule, index, device, scaler=scaler, ema=ema, progress=False,
                        on_batch_start=(lambda _i: hook()) if hook else None)
        return time.perf_counter() - started  # train_one_epoch synchronises at its end

    epoch(_synthetic_batches(sizes["warmup"], sizes["batch"], sizes["img"]), 0)  # warm-up: cuDNN choices, allocator
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds = epoch(_synthetic_batches(sizes["steps"], sizes["batch"], sizes["img"]), 1)
    result = {"config": config, "params": sum(p.numel() for p in model.parameters()), "weight_step_s": seconds / sizes["steps"],
              "peak_gib": _peak_memory_gib(device), "arch_step_s": None}
    if strategy is not None and strategy.alpha is not None:
        images, targets, *_ = _synthetic_batches(1, sizes["batch"], sizes["img"], seed=2)[0]
        images, targets = images_to_input(images, device), targets.to(device)
        strategy.arch_step(images, targets)  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        for _ in range(sizes["arch_steps"]):
            strategy.arch_step(images, targets)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        result["arch_step_s"] = (time.perf_counter() - started) / sizes["arch_steps"]
    return result


def run_step_part(sizes: dict[str, Any]) -> dict[str, Any]:
    rows = {}
    for config in CONFIGS:
        done = subprocess.run([sys.executable, __file__, "--step-worker", config, "--sizes", json.dumps(sizes)],
                              capture_output=True, text=True, cwd=ROOT, timeout=600)
        if done.returncode:
            raise RuntimeError(f"step worker {config} failed:\n{done.stderr[-3000:]}")
        rows[config] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"step {config}: {rows[config]['weight_step_s']:.3f} s, peak {rows[config]['peak_gib']:.2f} GiB", file=sys.stderr, flush=True)
    plain = rows["plain"]
    for row in rows.values():
        row["step_ratio"] = row["weight_step_s"] / plain["weight_step_s"]
        row["memory_ratio"] = row["peak_gib"] / plain["peak_gib"]
    return rows


# -- parts 2-5 -------------------------------------------------------------------------------------------

def search_settings(args: argparse.Namespace, out: Path, **changes: Any):
    from autonn_nas.search.settings import SearchSettings

    values: dict[str, Any] = dict(data=str(args.data), out=str(out), strategy="proxyless", epochs=2, device="cpu" if args.dry_run else "cuda",
                                  progress=False, seed=0)
    if args.dry_run:
        values.update(img_size=64, batch_size=2, width=0.25, depth=0.33, workers=0)
    if "retrain_epochs" in SearchSettings.field_names():  # a retrain phase, where this version has one: the shortest
        values["retrain_epochs"] = 1
    values.update(changes)
    return SearchSettings(**values)


def run_search_part(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from autonn_nas.search.runner import run_search

    started = time.perf_counter()
    result = run_search(search_settings(args, work / "search"))
    report = json.loads(Path(result.report).read_text())
    return {"seconds": time.perf_counter() - started, "weights": str(result.weights), "searched": report["decision"]["searched"],
            "shipped": report["decision"]["shipped"], "val": result.metrics,
            "history": json.loads((work / "search" / "history.json").read_text())}


BALLAST_CODE = ("import sys, torch; x = torch.empty(int(sys.argv[1]), dtype=torch.uint8, device='cuda'); "
                "torch.cuda.synchronize(); print('ready', flush=True); sys.stdin.read()")


class Ballast:
    """Device memory held by other processes (as a second job on a shared GPU would hold it): what a memory test
    needs, without a second GPU job. Each piece is a child process that holds its bytes until released."""

    def __init__(self) -> None:
        self.children: list[subprocess.Popen] = []

    def leave_free(self, gib: float) -> float:
        """Hold more until about `gib` GiB of the device stay free; returns the free GiB."""
        import torch

        torch.cuda.empty_cache()
        free = torch.cuda.mem_get_info()[0]
        take = int(free - gib * GIB)
        if take > 0:
            child = subprocess.Popen([sys.executable, "-c", BALLAST_CODE, str(take)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            if child.stdout.readline().strip() != "ready":
                raise RuntimeError("the ballast process could not take its memory")
            self.children.append(child)
        return torch.cuda.mem_get_info()[0] / GIB

    def release(self) -> None:
        for child in self.children:
            child.kill()
            child.wait()
        self.children = []


def run_probe_and_oom_parts(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import torch

    from autonn_nas.search.runner import SearchRun

    if args.dry_run:  # no device memory to cap on a CPU: run the probe step itself, at the requested batch
        run = SearchRun(search_settings(args, work / "probe", epochs=1, strategy="darts"))
        run._setup()
        run._memory_probe(run.batch_size)
        return {"probe": {"note": "CPU: the probe step ran once (batch fitting and halving need CUDA)", "batch": run.batch_size},
                "oom": {"note": "skipped: no CUDA"}}
    device = torch.device("cuda")
    results: dict[str, Any] = {}
    ballast = Ballast()
    try:
        # 3: the probe with only probe_cap_gib free, then a real epoch at the batch it chose: its peak must fit too
        run = SearchRun(search_settings(args, work / "probe", epochs=1, strategy="darts", batch_size=args.probe_batch))
        free = ballast.leave_free(args.probe_cap_gib)
        run._setup()  # the probe runs in here (the darts mixture: the heaviest weight step)
        batch = run.batch_size
        row = run._train_epoch(0)
        results["probe"] = {"free_gib": free, "asked": args.probe_batch, "batch": batch, "probe_peak_gib": (run.probe_peak_bytes or 0) / GIB,
                            "epoch_peak_gib": row["peak_memory_gib"], "batch_changes": run.batch_changes}
        del run
        ballast.release()
        torch.cuda.empty_cache()
        # 4: after the probe, others take half of what the probe step needed beyond what stays resident: the fitted
        # batch no longer fits, and the epoch must halve it and go on
        run = SearchRun(search_settings(args, work / "oom", epochs=1, strategy="darts", batch_size=args.probe_batch))
        ballast.leave_free(args.probe_cap_gib)
        run._setup()
        fitted = run.batch_size
        need = (run.probe_peak_bytes or 0) - torch.cuda.memory_allocated(device)
        squeezed = ballast.leave_free(0.6 * need / GIB)
        row = run._train_epoch(0)
        results["oom"] = {"free_gib": squeezed, "step_needs_gib": need / GIB, "fitted_batch": fitted, "batch_after": run.batch_size,
                          "batch_changes": run.batch_changes, "epoch_peak_gib": row["peak_memory_gib"]}
        del run
    finally:
        ballast.release()
        torch.cuda.empty_cache()
    return results


def fp16_gap(weights: str, check_images: list[Path]) -> dict[str, Any]:
    """Where an fp16 export disagrees: the same unfused network in fp16 against fp32 on the same images, and the
    largest activation magnitude of any layer in fp32 (fp16 overflows past 65504)."""
    import copy

    import torch

    from autonn_nas.export.exporter import check_inputs, load_model_for_export

    device = torch.device("cuda")
    model, checkpoint = load_model_for_export(weights, device)
    images = check_inputs(check_images, int(checkpoint.get("img_size") or 640))[0].to(device)
    largest = {"value": 0.0, "layer": ""}

    def record(module: Any, _inputs: Any, output: Any) -> None:
        if isinstance(output, torch.Tensor) and output.is_floating_point():
            value = float(output.detach().abs().max())
            if value > largest["value"]:
                largest.update(value=value, layer=f"{getattr(module, 'i', '?')}:{type(module).__name__}")

    hooks = [m.register_forward_hook(record) for m in model.modules()]
    with torch.no_grad():
        reference = model(images)[0].float()
    for hook in hooks:
        hook.remove()
    with torch.no_grad():
        half = copy.deepcopy(model).half()(images.half())[0].float()
    return {"unfused_fp16_vs_fp32_max_abs": float((half - reference).abs().nan_to_num(float("inf")).max()),
            "fp16_nonfinite": int((~torch.isfinite(half)).sum()), "largest_fp32_activation": largest}


def run_export_part(args: argparse.Namespace, weights: str, work: Path) -> dict[str, Any]:
    from autonn_nas.data.config import load_dataset_config
    from autonn_nas.export.exporter import export_weights

    check = load_dataset_config(args.data).val[:4]  # real images: what the stage checks its exports on
    rows: dict[str, Any] = {"check_images": len(check)}
    for fmt in ("torchscript", "onnx"):
        try:
            result = export_weights(weights, fmt, half=not args.dry_run, out=work / f"bestmodel.{fmt}", check_images=check or None,
                                    device="cpu" if args.dry_run else "cuda")
            rows[fmt] = {"ok": True, "half": result.half, "agreement": result.agreement.describe()}
        except Exception as error:  # a smoke check reports every part, whatever fails
            rows[fmt] = {"ok": False, "error": f"{type(error).__name__}: {error}"[:400]}
    if not args.dry_run and not all(rows[fmt]["ok"] for fmt in ("torchscript", "onnx")):
        try:
            rows["fp16_gap"] = fp16_gap(weights, check)
        except Exception as error:
            rows["fp16_gap"] = {"error": f"{type(error).__name__}: {error}"[:400]}
    return rows


# -- the table -------------------------------------------------------------------------------------------

def markdown(sizes: dict[str, Any], results: dict[str, Any], device_name: str) -> str:
    lines = [f"GPU smoke check on {device_name}: width {sizes['width']}, depth {sizes['depth']}, {sizes['img']} px, batch {sizes['batch']}"
             f"{', AMP' if sizes['device'] == 'cuda' else ''}", ""]
    step = results.get("step")
    if isinstance(step, dict) and "plain" in step:
        lines += ["| configuration | params | weight step (s) | / plain | arch step (s) | peak memory (GiB) | / plain |",
                  "|---|---|---|---|---|---|---|"]
        for config, row in step.items():
            arch = f"{row['arch_step_s']:.3f}" if row["arch_step_s"] is not None else "-"
            lines.append(f"| {config} | {row['params']:,} | {row['weight_step_s']:.3f} | {row['step_ratio']:.2f} | {arch} | "
                         f"{row['peak_gib']:.2f} | {row['memory_ratio']:.2f} |")
        lines.append("")
    for part in ("search", "probe", "oom", "export"):
        value = results.get(part)
        if part == "search" and isinstance(value, dict) and "seconds" in value:
            value = {k: v for k, v in value.items() if k != "history"} | {
                "epoch_seconds": [round(r.get("seconds", 0.0), 1) for r in value["history"] if r.get("epoch", -1) >= 0],
                "epoch_peak_gib": [r.get("peak_memory_gib") for r in value["history"] if r.get("epoch", -1) >= 0]}
        lines.append(f"- **{part}**: {json.dumps(value, default=str)}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes: the code paths without a GPU")
    parser.add_argument("--data", type=Path, help="dataset.yaml for the search parts (default: the coco128 beside the repository, "
                                                  "else the embedded coco128_mini)")
    parser.add_argument("--batch", type=int, default=16, help="step part's batch at full size")
    parser.add_argument("--steps", type=int, default=8, help="timed steps per configuration")
    parser.add_argument("--probe-batch", type=int, default=64, help="the batch the probe starts from")
    parser.add_argument("--probe-cap-gib", type=float, default=24.0, help="device memory left free for the probe part")
    parser.add_argument("--parts", nargs="+", default=["step", "search", "probe", "export"], choices=["step", "search", "probe", "export"])
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--step-worker", help=argparse.SUPPRESS)
    parser.add_argument("--sizes", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step_worker:
        print(json.dumps(step_worker(args.step_worker, json.loads(args.sizes))))
        return 0

    import torch

    if not args.dry_run and not torch.cuda.is_available():
        print("gpu_smoke: error: no CUDA device here; run it on a machine with a GPU, or pass --dry-run", file=sys.stderr)
        return 2
    if args.data is None:
        beside = ROOT.parent / "shared" / "datasets" / "coco128" / "dataset.yaml"
        args.data = beside if beside.is_file() and not args.dry_run else ROOT / "shared_volume" / "datasets" / "coco128_mini" / "dataset.yaml"
    sizes = full_sizes(args)
    device_name = torch.cuda.get_device_name(0) if not args.dry_run else "CPU (dry run)"
    print(f"gpu_smoke: {device_name}, torch {torch.__version__}, data {args.data}", file=sys.stderr, flush=True)
    results: dict[str, Any] = {"device": device_name, "torch": torch.__version__, "sizes": sizes}
    failed = False
    with tempfile.TemporaryDirectory(prefix="gpu_smoke_") as tmp:
        work = Path(tmp)
        for part in args.parts:
            started = time.perf_counter()
            try:
                if part == "step":
                    results["step"] = run_step_part(sizes)
                elif part == "search":
                    results["search"] = run_search_part(args, work)
                elif part == "probe":
                    results.update(run_probe_and_oom_parts(args, work))
                elif part == "export":
                    weights = results.get("search", {}).get("weights")
                    results["export"] = run_export_part(args, weights, work) if weights else {"note": "no search weights to export"}
            except Exception as error:  # report every part, whatever fails
                failed = True
                results[part] = {"error": f"{type(error).__name__}: {error}"[:600]}
                traceback.print_exc()
            print(f"gpu_smoke: part {part} took {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
            if args.json:  # after every part: a run cut short by its time limit still leaves what it measured
                args.json.write_text(json.dumps(results, indent=1, default=str))
    table = markdown(sizes, results, device_name)
    print(table)
    exports = [row for fmt, row in results.get("export", {}).items() if fmt in ("torchscript", "onnx")]
    return 1 if failed or any(not row["ok"] for row in exports) else 0


if __name__ == "__main__":
    sys.exit(main())
