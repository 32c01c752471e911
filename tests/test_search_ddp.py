"""torchrun + DDP search on CPU (gloo): 2 processes against 1 process of the same global batch and seed.

What is checked: the run succeeds under `torchrun --nproc-per-node 2`; both ranks end with identical
weights and architecture logits (digests written by tests/ddp_hooks/rank_digests.py); the weights are close to a single
process's; only one set of outputs is written; the checkpoint (no 'module.' prefix) resumes in one process,
and a single process's checkpoint resumes under 2 ranks. The other launch forms of docs/search.md run the same
search: `--no-python` with the console script, and two launchers joined by a c10d rendezvous (two
"machines" on loopback sharing one --out).

Tolerance: the ranks load exactly the single process's global batches (GlobalBatchShard) and average
gradients scaled to the global batch, but torch's SyncBatchNorm is CUDA-only, so on CPU each rank
normalises with the statistics of its half of the batch. That changes every step a little, so the
weights are compared relative to their norm (measured ~2e-4 after 2 epochs; bound 2e-3), not bit for
bit. The logits are not compared with the single process: Adam's first steps are nearly sign steps,
so a small gradient difference can flip a step. Two 2-rank runs (any launch form) are compared by
architecture, and by weights within the same bound (they were bit-identical when this was written).

Each torchrun launch costs ~10 s on 2 cores, so the 2-rank and the 1-process runs are made once per module.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from autonn_nas.search.runner import run_search
from autonn_nas.search.settings import SearchSettings
from ddp_hooks import rank_digests

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "shared_volume" / "datasets" / "coco128_mini" / "dataset.yaml"
ARGS = dict(data=str(DATA), strategy="proxyless", epochs=2, img_size=64, batch_size=8, width=0.125, depth=0.33, workers=0,
            device="cpu", evaluations=4, progress=False, budget=1.1, seed=0, retrain_epochs=0)  # ranks compared; the retrain (rank 0's): test_service_nproc
CLI = ["--data", str(DATA), "--strategy", "proxyless", "--epochs", "2", "--img", "64", "--batch", "8", "--width", "0.125",
       "--depth", "0.33", "--workers", "0", "--device", "cpu", "--evaluations", "4", "--no-progress", "--budget", "1.1", "--seed", "0",
       "--retrain-epochs", "0"]
LAUNCH_TIMEOUT = 300  # seconds for one torchrun launch (~10 s on 2 busy cores)
MODULE = ["-m", "autonn_nas"]  # torchrun runs `python -m autonn_nas ...`


@dataclass(frozen=True)
class Run:
    """A finished search: its --out, its ranks' debug digests and what its launcher(s) printed."""
    out: Path
    debug: Path
    stdout: str = ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "last.pt", map_location="cpu", weights_only=False)["state_dict"]


def relative_difference(reference: dict[str, torch.Tensor], other: dict[str, torch.Tensor]) -> float:
    """|other - reference| / |reference| over the floating-point tensors of two state dicts."""
    floats = [k for k in reference if reference[k].is_floating_point()]
    difference = sum(float(((reference[k] - other[k]) ** 2).sum()) for k in floats) ** 0.5
    return difference / sum(float((reference[k] ** 2).sum()) for k in floats) ** 0.5


def architecture(run: Path) -> dict[str, str]:
    return json.loads((run / "arch.json").read_text())["architecture"]


def digests(debug: Path, world_size: int) -> list[dict]:
    """Each rank's digest of its weights and logits after supernet training (tests/ddp_hooks/rank_digests.py)."""
    return [json.loads((debug / f"rank{r}_of{world_size}.json").read_text()) for r in range(world_size)]


def launch_env(debug: Path) -> dict[str, str]:
    return rank_digests.launch_env(debug, {**os.environ, "OMP_NUM_THREADS": "1"})


def one_machine(processes: int) -> list[str]:
    return ["--nproc-per-node", str(processes), "--master-addr", "127.0.0.1", "--master-port", str(free_port())]


def torchrun(launch: list[str], program: list[str], arguments: list[str]) -> list[str]:
    """`torchrun LAUNCH PROGRAM ARGUMENTS`, as `python -m torch.distributed.run` (the torchrun script's module)."""
    return [sys.executable, "-m", "torch.distributed.run", *launch, *program, *arguments]


def run_torchrun(command: list[str], debug: Path) -> subprocess.CompletedProcess:
    done = subprocess.run(command, cwd=ROOT, env=launch_env(debug), capture_output=True, text=True, timeout=LAUNCH_TIMEOUT)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def stop_launcher(launcher: subprocess.Popen) -> None:
    """SIGTERM, so torchrun stops its workers itself: it starts each in a session of its own, which
    killing the launcher's process group would miss. SIGKILL if it does not end in 30 s."""
    launcher.terminate()
    try:
        launcher.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        launcher.kill()
        launcher.communicate()


def search_arguments(out: Path) -> list[str]:
    return ["search", *CLI, "--out", str(out)]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> Run:
    """The tiny search under `torchrun --nproc-per-node 2 -m autonn_nas` (docs/search.md's first form)."""
    folder = tmp_path_factory.mktemp("two_ranks")
    out, debug = folder / "out", folder / "debug"
    done = run_torchrun(torchrun(one_machine(2), MODULE, search_arguments(out)), debug)
    return Run(out, debug, done.stdout)


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> Run:
    """The same search in this process (one thread, like each torchrun worker)."""
    folder = tmp_path_factory.mktemp("one_process")
    out, debug = folder / "out", folder / "debug"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with rank_digests.digests_written_to(debug):
            run_search(SearchSettings(**ARGS, out=str(out)))
    finally:
        torch.set_num_threads(threads)
    return Run(out, debug)


def assert_two_ranks_wrote_once(run: Run, reference: Run) -> None:
    """Both ranks of `run` ended in the same state and rank 0 alone wrote the reference's files and one log."""
    ranks = digests(run.debug, 2)
    assert ranks[0]["weights"] == ranks[1]["weights"] and ranks[0]["alpha"] == ranks[1]["alpha"]
    assert run.stdout.count("model YAML:") == 1  # printed by rank 0 only
    assert sorted(p.name for p in run.out.iterdir()) == sorted(p.name for p in reference.out.iterdir())
    assert (run.out / "search.log").read_text().count("search on cpu") == 1


def assert_same_search_as(reference: Run, run: Run) -> None:
    """`run` (2 ranks, another launch form) wrote one set of outputs with the reference's architecture and weights."""
    assert_two_ranks_wrote_once(run, reference)
    assert architecture(run.out) == architecture(reference.out)
    assert relative_difference(weights(reference.out), weights(run.out)) < 2e-3


@pytest.mark.slow
def test_two_process_search_matches_one_process(two_ranks, one_process, tmp_path):
    out2, out1 = two_ranks.out, one_process.out
    # one set of outputs: the same files as the single process, one run logged
    assert_two_ranks_wrote_once(two_ranks, one_process)

    single, ddp = weights(out1), weights(out2)
    assert set(single) == set(ddp) and not any(k.startswith("module.") for k in ddp)
    assert relative_difference(single, ddp) < 2e-3, relative_difference(single, ddp)
    assert len(json.loads((out2 / "history.json").read_text())) == len(json.loads((out1 / "history.json").read_text()))

    # the 2-rank checkpoint resumes in one process (here: straight to the derivation)
    resumed = tmp_path / "resumed"
    shutil.copytree(out2, resumed)
    result = run_search(SearchSettings(**{**ARGS, "out": str(resumed), "resume": True}))
    assert result.weights.is_file()


@pytest.mark.slow
def test_no_python_console_script_form_runs_the_same_search(two_ranks, tmp_path):
    # docs/search.md: torchrun --nproc-per-node 8 --no-python autonn-nas search ...
    script = Path(sys.executable).parent / "autonn-nas"
    if not script.is_file():
        pytest.skip(f"no console script next to the interpreter ({script}); install the package (pip install -e .)")
    out, debug = tmp_path / "out", tmp_path / "debug"
    done = run_torchrun(torchrun(one_machine(2), ["--no-python", str(script)], search_arguments(out)), debug)
    assert_same_search_as(two_ranks, Run(out, debug, done.stdout))


@pytest.mark.slow
def test_two_machines_joined_by_c10d_rendezvous_run_the_same_search(two_ranks, tmp_path):
    # docs/search.md's multi-machine form, both "machines" on loopback writing into one --out (a shared volume):
    # the rendezvous gives each launcher its node rank, and only global rank 0 writes
    out, debug, port = tmp_path / "out", tmp_path / "debug", free_port()
    launch = ["--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}",
              "--rdzv-id", f"autonn-nas-test-{os.getpid()}-{port}"]
    command = torchrun(launch, MODULE, search_arguments(out))
    machines = [subprocess.Popen(command, cwd=ROOT, env=launch_env(debug), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True) for _ in range(2)]
    try:
        outputs = [machine.communicate(timeout=LAUNCH_TIMEOUT) for machine in machines]
    finally:
        for machine in machines:
            if machine.poll() is None:
                stop_launcher(machine)
    for machine, (_, stderr) in zip(machines, outputs):
        assert machine.returncode == 0, stderr[-3000:]
    assert_same_search_as(two_ranks, Run(out, debug, "".join(stdout for stdout, _ in outputs)))


@pytest.mark.slow
def test_one_process_checkpoint_resumes_under_two_ranks(one_process, tmp_path):
    # the mirror of the 2 -> 1 resume above: the finished run's last.pt goes straight to the derivation
    resumed, debug = tmp_path / "resumed", tmp_path / "debug"
    shutil.copytree(one_process.out, resumed)
    arguments = ["search", "--resume", "--out", str(resumed), "--device", "cpu", "--workers", "0", "--no-progress"]
    done = run_torchrun(torchrun(one_machine(2), MODULE, arguments), debug)
    assert done.stdout.count("model YAML:") == 1
    # both ranks restored exactly the single process's weights and logits
    (single,) = digests(one_process.debug, 1)
    for rank in digests(debug, 2):
        assert (rank["weights"], rank["alpha"]) == (single["weights"], single["alpha"])
    assert architecture(resumed) == architecture(one_process.out)
    assert (resumed / "search.log").read_text().count("resuming") == 1
    assert len(json.loads((resumed / "history.json").read_text())) == len(json.loads((one_process.out / "history.json").read_text()))


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
    from autonn_nas.data.loader import GlobalBatchShard
    from autonn_nas.search.distributed import DistContext

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
