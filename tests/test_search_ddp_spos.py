"""spos under torchrun: the candidates are scored by both ranks (each its share) and gathered.

A 2-process spos search (supernet training, then scoring) is compared with a single process that resumes
from the 2-process checkpoint and scores with the same weights: the same candidates, the same scores (the
ranks load whole batches and recalibrate BN as one process does; only summation order may differ, so
1e-4 relative), the same choice, and each rank scored about half of them (tests/ddp_hooks/rank_digests.py).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from autonn_nas.search.runner import run_search
from autonn_nas.search.settings import SearchSettings
from ddp_hooks import rank_digests
from test_search_ddp import ARGS, CLI, ROOT, free_port

EVALUATIONS = 6  # evolution: a population of 4, then one generation of 2 -> batches of 4 and 2
SPOS_CLI = [*CLI, "--strategy", "spos", "--epochs", "1", "--evaluations", str(EVALUATIONS)]  # later flags win


def scored(out) -> dict[str, dict]:
    return {json.dumps(e["architecture"], sort_keys=True): e for e in json.loads((out / "spos_evaluated.json").read_text())}


@pytest.mark.slow
def test_two_ranks_split_spos_scoring_and_agree_with_one_process(tmp_path):
    debug2, debug1, out2, out1 = tmp_path / "debug2", tmp_path / "debug1", tmp_path / "ddp", tmp_path / "single"
    env = rank_digests.launch_env(debug2, {**os.environ, "OMP_NUM_THREADS": "1"})
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
               "--master-port", str(free_port()), "-m", "autonn_nas", "search", *SPOS_CLI, "--out", str(out2)]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    # each rank scored its share of every batch: 2 of the 4, then 1 of the 2
    shares = [json.loads((debug2 / f"rank{r}_of2_scored.json").read_text()) for r in (0, 1)]
    assert [len(share) for share in shares] == [3, 3]
    by_ranks = [json.dumps(e["architecture"], sort_keys=True) for share in shares for e in share]
    assert len(set(by_ranks)) == EVALUATIONS

    # one process, the same weights (resumed from the 2-process checkpoint: straight to the scoring)
    out1.mkdir()
    shutil.copy(out2 / "last.pt", out1 / "last.pt")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with rank_digests.digests_written_to(debug1):
            single = run_search(SearchSettings(**{**ARGS, "strategy": "spos", "out": str(out1), "resume": True}))
    finally:
        torch.set_num_threads(threads)
    assert len(json.loads((debug1 / "rank0_of1_scored.json").read_text())) == EVALUATIONS

    two, one = scored(out2), scored(out1)
    assert set(two) == set(one) == set(by_ranks)
    for arch, entry in one.items():
        assert entry["loss"] == pytest.approx(two[arch]["loss"], rel=1e-4), arch
        assert entry["generation"] == two[arch]["generation"]
    assert json.loads((out2 / "arch.json").read_text())["architecture"] == single.arch.to_dict()
    report = json.loads((out2 / "report.json").read_text())
    assert report["spos"]["mode"] == "evolution" and report["spos"]["evaluated"] == EVALUATIONS
    # the held-out images every rank read are recorded once
    assert report["dataset"]["files_read"]["architecture"] == report["dataset"]["holdout"]
