"""torchrun + DDP search on CPU (gloo): 2 processes against 1 process of the same global batch and seed.

What is checked: the run succeeds under `torchrun --nproc-per-node 2`; both ranks end with identical
weights and architecture logits (AUTONN_NAS_DDP_DEBUG_DIR digests); the weights are close to a single
process's; only one set of outputs is written; the checkpoint (no 'module.' prefix) resumes in one process.

Tolerance: the ranks load exactly the single process's global batches (GlobalBatchShard) and average
gradients scaled to the global batch, but torch's SyncBatchNorm is CUDA-only, so on CPU each rank
normalises with the statistics of its half of the batch. That changes every step a little, so the
weights are compared relative to their norm (measured ~2e-4 after 2 epochs; bound 2e-3), not bit for
bit. The logits are not compared with the single process: Adam's first steps are nearly sign steps,
so a small gradient difference can flip a step.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from autonn_nas.search.distributed import DEBUG_DIR_ENV
from autonn_nas.search.runner import run_search
from autonn_nas.search.settings import SearchSettings

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "shared_volume" / "datasets" / "coco128_mini" / "dataset.yaml"
ARGS = dict(data=str(DATA), strategy="proxyless", epochs=2, img_size=64, batch_size=8, width=0.125, depth=0.33, workers=0,
            device="cpu", evaluations=4, progress=False, budget=1.1, seed=0)
CLI = ["--data", str(DATA), "--strategy", "proxyless", "--epochs", "2", "--img", "64", "--batch", "8", "--width", "0.125",
       "--depth", "0.33", "--workers", "0", "--device", "cpu", "--evaluations", "4", "--no-progress", "--budget", "1.1", "--seed", "0"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "last.pt", map_location="cpu", weights_only=False)["state_dict"]


@pytest.mark.slow
def test_two_process_search_matches_one_process(tmp_path, monkeypatch):
    debug, out2, out1 = tmp_path / "debug", tmp_path / "ddp", tmp_path / "single"
    env = {**os.environ, "OMP_NUM_THREADS": "1", DEBUG_DIR_ENV: str(debug)}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
               "--master-port", str(free_port()), "-m", "autonn_nas", "search", *CLI, "--out", str(out2)]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("model YAML:") == 1  # printed by rank 0 only

    ranks = [json.loads((debug / f"rank{r}_of2.json").read_text()) for r in (0, 1)]
    assert ranks[0]["weights"] == ranks[1]["weights"] and ranks[0]["alpha"] == ranks[1]["alpha"]

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        monkeypatch.setenv(DEBUG_DIR_ENV, str(debug))
        run_search(SearchSettings(**ARGS, out=str(out1)))
    finally:
        torch.set_num_threads(threads)
    single, ddp = weights(out1), weights(out2)
    assert set(single) == set(ddp) and not any(k.startswith("module.") for k in ddp)
    floats = [k for k in single if single[k].is_floating_point()]
    difference = sum(float(((single[k] - ddp[k]) ** 2).sum()) for k in floats) ** 0.5
    norm = sum(float((single[k] ** 2).sum()) for k in floats) ** 0.5
    assert difference / norm < 2e-3, difference / norm

    # one set of outputs: the same files as the single process, one run logged
    assert sorted(p.name for p in out2.iterdir()) == sorted(p.name for p in out1.iterdir())
    assert (out2 / "search.log").read_text().count("search on cpu") == 1
    assert len(json.loads((out2 / "history.json").read_text())) == len(json.loads((out1 / "history.json").read_text()))

    # the 2-rank checkpoint resumes in one process (here: straight to the derivation)
    resumed = tmp_path / "resumed"
    shutil.copytree(out2, resumed)
    result = run_search(SearchSettings(**{**ARGS, "out": str(resumed), "resume": True}))
    assert result.weights.is_file()


def test_sync_batchnorm_turns_back_into_batchnorm_with_the_same_state():
    # CUDA runs train with SyncBatchNorm and derive on rank 0 alone with plain BatchNorm2d again
    from torch import nn

    from autonn_nas.search.distributed import revert_sync_batchnorm

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Sequential(nn.BatchNorm2d(4)))
    with torch.no_grad():
        model[1].running_mean.fill_(0.5)
    synced = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    assert isinstance(synced[1], nn.SyncBatchNorm)
    before = {k: v.clone() for k, v in synced.state_dict().items()}
    plain = revert_sync_batchnorm(synced)
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in plain.modules())
    assert isinstance(plain[1], nn.BatchNorm2d) and isinstance(plain[2][0], nn.BatchNorm2d)
    assert all(torch.equal(before[k], v) for k, v in plain.state_dict().items())
    assert plain[1].weight is not None and plain(torch.rand(2, 3, 8, 8)).shape == (2, 4, 6, 6)


def test_global_batch_shards_are_the_single_process_batches():
    from autonn_nas.search.distributed import DistContext, GlobalBatchShard

    order = list(range(10))
    shards = [list(GlobalBatchShard(order, 4, DistContext(rank, 2))) for rank in (0, 1)]
    assert shards[0] == [0, 1, 4, 5, 8] and shards[1] == [2, 3, 6, 7, 9]
    assert all(len(GlobalBatchShard(order, 4, DistContext(rank, 2))) == 5 for rank in (0, 1))
    with pytest.raises(ValueError, match="divisible"):
        GlobalBatchShard(order, 5, DistContext(0, 2))


@pytest.mark.parametrize("processes", [1, 3, 8])
def test_default_gpu_batch_is_16_per_process_so_any_count_divides_it(processes):
    gpu = SearchSettings(data="d.yaml").resolve_defaults(on_gpu=True, processes=processes)
    assert gpu.batch_size == 16 * processes and gpu.batch_size % processes == 0
    assert SearchSettings(data="d.yaml", batch_size=24).resolve_defaults(on_gpu=True, processes=processes).batch_size == 24  # as asked
    assert SearchSettings(data="d.yaml").resolve_defaults(on_gpu=False, processes=processes).batch_size == 8
