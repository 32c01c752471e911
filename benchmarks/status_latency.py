"""/status_request latency of the stage while a search uses every core, against an idle server.

    .venv/bin/python benchmarks/status_latency.py [--requests 200] [--load search|cpu-burn] [--json OUT]

Starts the PM stub and the stage server as real processes on loopback (as `autonn-nas demo` does), times
`--requests` sequential GETs of /status_request with nothing running, then starts a search on the embedded
demo project through /start and times the same number of requests while it runs. `--load cpu-burn`
replaces the search by one process per core doing matrix products (for machines without the runner).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from autonn_nas.service.local_stack import free_port, http_get, start_pm_stub, start_stage  # noqa: E402

USER, PROJECT = "demo_user", "demo_project"
# A search long enough to outlast the measurement; width/size chosen so every core is busy on a CPU.
SEARCH_SETTINGS = "epochs: 200\nimg_size: 128\nbatch_size: 8\nwidth: 0.25\ndepth: 0.33\n"


def _burn(stop_at: float) -> None:
    import torch

    torch.set_num_threads(1)
    a = torch.randn(256, 256)
    while time.time() < stop_at:
        a = torch.tanh(a @ a)


def _cpu_times() -> list[int]:
    with open("/proc/stat") as handle:
        return [int(v) for v in handle.readline().split()[1:]]


def _busy_fraction(before: list[int], after: list[int]) -> float:
    delta = [b - a for a, b in zip(before, after)]
    idle = delta[3] + delta[4]  # idle + iowait
    return round(1 - idle / max(1, sum(delta)), 3)


def measure(url: str, count: int, pause: float) -> list[float]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        code, _ = http_get(url, timeout=30)
        times.append((time.perf_counter() - started) * 1000)
        assert code == 200
        time.sleep(pause)
    return times


def summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {"n": len(times), "median_ms": round(statistics.median(ordered), 2),
            "p95_ms": round(ordered[max(0, int(0.95 * len(ordered)) - 1)], 2), "max_ms": round(ordered[-1], 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--pause", type=float, default=0.02, help="seconds between requests")
    parser.add_argument("--load", choices=("search", "cpu-burn"), default="search")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="status_latency_"))
    shared = root / "shared"
    shutil.copytree(REPO / "shared_volume" / "common" / USER / PROJECT, shared / "common" / USER / PROJECT)
    shutil.copytree(REPO / "shared_volume" / "datasets", shared / "datasets", ignore=shutil.ignore_patterns("*.cache"))
    (shared / "common" / USER / PROJECT / "neck_nas.yaml").write_text(SEARCH_SETTINGS)
    stage_port, stub_port = free_port(), free_port()
    stub = start_pm_stub(shared, f"http://127.0.0.1:{stage_port}", stub_port, root / "pm_stub.log")
    stage = start_stage(shared, f"http://127.0.0.1:{stub_port}", stage_port, root / "stage.log",
                        {"NAS_QUEUE_LOCK": str(root / "queue.lock")})
    query = urllib.parse.urlencode({"user_id": USER, "project_id": PROJECT})
    url = f"{stage.url}/status_request?{query}"
    burners: list[multiprocessing.Process] = []
    try:
        measure(url, 10, 0)  # warm-up
        idle = measure(url, args.requests, args.pause)
        if args.load == "search":
            assert http_get(f"{stage.url}/start?{query}")[1] == "started"
            deadline = time.monotonic() + 300
            while True:  # until the first epoch is done: the search is in its training loop proper
                detail = json.loads(http_get(f"{stage.url}/status?{query}")[1])
                if detail["status"] == "running" and detail.get("epoch"):
                    break
                if time.monotonic() > deadline or detail["status"] in ("failed", "completed"):
                    raise SystemExit(f"the search did not reach its first epoch: {detail}; see {root}")
                time.sleep(0.5)
        else:
            stop_at = time.time() + 3600
            burners = [multiprocessing.Process(target=_burn, args=(stop_at,), daemon=True) for _ in range(os.cpu_count() or 1)]
            for burner in burners:
                burner.start()
            time.sleep(2)
        cpu_before = _cpu_times()
        busy = measure(url, args.requests, args.pause)
        cpu_busy = _busy_fraction(cpu_before, _cpu_times())
        if args.load == "search":
            assert http_get(url)[1] == "running", "the search ended during the measurement; raise its epochs"
    finally:
        for burner in burners:
            burner.terminate()
        http_get(f"{stage.url}/stop?{query}")
        stage.stop()
        stub.stop()
    result = {"cores": os.cpu_count(), "load": args.load, "cpu_busy_during": cpu_busy,
              "idle": summary(idle), "busy": summary(busy)}
    print(f"cores {result['cores']}, load '{args.load}', all cores {100 * cpu_busy:.0f}% busy during the busy run")
    print(f"{'':8}{'n':>6}{'median ms':>12}{'p95 ms':>10}{'max ms':>10}")
    for name in ("idle", "busy"):
        s = result[name]
        print(f"{name:8}{s['n']:>6}{s['median_ms']:>12}{s['p95_ms']:>10}{s['max_ms']:>10}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
