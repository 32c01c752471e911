"""Cost model and budget: full-size figures from search-space.md, FLOPs ordering, latency table, budget rules."""
from __future__ import annotations

import itertools
import json
import math

import pytest
import torch

from autonn_nas.models.search_space import CANDIDATES
from autonn_nas.models.yolo import build_model
from autonn_nas.search.arch import Architecture, base_architecture
from autonn_nas.search.cost import (
    CostTable,
    build_cost_table,
    counted_cost_table,
    feasible_architectures,
    load_latency_table,
    measured_latency_table,
    most_probable_within_budget,
    resolve_budget,
)
from autonn_nas.search.cost import latency as latency_module
from autonn_nas.search.settings import SearchSettings

# search-space.md: one candidate of each block (3x3 / 5x5) at full size, nc = 80
SEED_CANDIDATE_PARAMS = {"m_16": (2_298_880, 5_444_608), "m_21": (576_000, 1_362_432), "m_25": (2_298_880, 5_444_608), "m_29": (9_185_280, 21_768_192)}


@pytest.fixture(scope="module")
def full_meta():
    with torch.device("meta"):  # structure only: the 201M-parameter supernet costs no memory
        return build_model("yolov4-p5-search.yaml")


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build_model("yolov4-p5-search.yaml", nc=2, width=0.125, depth=0.33)


def test_params_match_the_seed_figures_per_candidate(full_meta):
    table = counted_cost_table(full_meta, 640, "params")
    for label, (k3, k5) in SEED_CANDIDATE_PARAMS.items():
        for name in CANDIDATES:
            assert table.blocks[label][name] == (k3 if name.startswith("k3") else k5), (label, name)
    assert table.cost(base_architecture(table.labels)) == 70_834_012  # the base model
    supernet = table.fixed + sum(sum(entries.values()) for entries in table.blocks.values())
    assert supernet == 201_611_612  # every candidate of every block


def test_flops_k5_costs_more_and_matches_the_documented_increase(full_meta):
    table = counted_cost_table(full_meta, 640, "flops")
    for label, entries in table.blocks.items():
        for act in ("relu", "leaky", "mish"):
            assert entries[f"k5_{act}"] > entries[f"k3_{act}"] > 0, label
    base = table.cost(base_architecture(table.labels))
    all_k5 = table.cost(Architecture({label: "k5_mish" for label in table.labels}))
    assert 38e9 < all_k5 - base < 42e9  # "about 40 GFLOPs at 640x640"
    assert 0.22 < (all_k5 - base) / base < 0.26  # "about +24%"
    assert table.input_shapes["m_21"] == [256, 80, 80]  # P3 neck block at 640: 256 channels at stride 8


def test_expected_cost_is_differentiable_and_exact_at_one_hot(tiny):
    table = counted_cost_table(tiny, 64, "flops")
    logits = torch.zeros(len(table.labels), len(CANDIDATES), requires_grad=True)
    expected = table.expected(torch.softmax(logits, -1).double())
    (grad,) = torch.autograd.grad(expected, [logits])
    assert grad[:, 3:].sum() > 0 > grad[:, :3].sum()  # more 5x5 probability, more cost
    arch = Architecture({label: CANDIDATES[i % 6] for i, label in enumerate(table.labels)})
    one_hot = torch.nn.functional.one_hot(torch.tensor(arch.indices()), len(CANDIDATES)).double()
    assert math.isclose(float(table.expected(one_hot)), table.cost(arch), rel_tol=1e-12)


def test_latency_is_measured_then_cached_and_round_trips_as_a_table(tiny, tmp_path, monkeypatch):
    cache = tmp_path / "cache.json"
    table = measured_latency_table(tiny, 64, torch.device("cpu"), cache_path=cache, warmup=1, repeats=2)
    assert table.measure == "latency" and table.unit == "ms" and "measured on cpu" in table.source
    assert all(v > 0 for entries in table.blocks.values() for v in entries.values()) and table.fixed >= 0
    assert json.loads(cache.read_text())

    def no_measuring(*args, **kwargs):
        raise AssertionError("a cached entry was measured again")

    monkeypatch.setattr(latency_module, "measure_ms", no_measuring)
    again = measured_latency_table(tiny, 64, torch.device("cpu"), cache_path=cache)
    assert again.blocks == table.blocks
    path = tmp_path / "target.json"
    path.write_text(json.dumps(table.to_dict()))
    loaded = build_cost_table(tiny, 64, "latency", torch.device("cpu"), latency_table=path)
    assert loaded.blocks == table.blocks and str(path) in loaded.source


def test_latency_table_errors_name_the_problem(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"fixed": 1.0, "blocks": {"m_16": {name: 1.0 for name in CANDIDATES}}}))
    with pytest.raises(ValueError, match="m_21"):
        load_latency_table(path, ["m_16", "m_21"])
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_latency_table(path, ["m_16"])


def _toy_table() -> CostTable:
    # activations cost differently here (as latency may): relu < leaky < mish, 5x5 = 3x3 + 10
    per = {"k3_relu": 1.0, "k3_leaky": 2.0, "k3_mish": 3.0, "k5_relu": 11.0, "k5_leaky": 12.0, "k5_mish": 13.0}
    return CostTable("latency", 100.0, {label: dict(per) for label in ("m_16", "m_21", "m_25", "m_29")}, 64, "toy")


def test_budget_default_is_the_base_model_and_levels_tighten_toward_the_cheapest():
    table = _toy_table()
    base = table.cost(base_architecture(table.labels))
    assert resolve_budget(table).limit == base == 112.0
    _, cheapest = table.cheapest()
    assert cheapest == 104.0
    limits = [resolve_budget(table, None, level).limit for level in range(11)]
    assert limits[0] == base and limits[10] == cheapest
    assert all(a > b for a, b in zip(limits, limits[1:]))
    assert resolve_budget(table, 1.5).limit == 1.5 * base
    for level in range(11):  # every level has a feasible architecture
        assert feasible_architectures(table, resolve_budget(table, None, level))


def test_budget_below_the_cheapest_architecture_names_the_minimum():
    table = _toy_table()
    with pytest.raises(ValueError, match=r"at least 0\.9286"):
        resolve_budget(table, 0.9)


def test_with_flops_the_cheapest_is_the_base_cost(tiny):
    table = counted_cost_table(tiny, 64, "flops")
    budget = resolve_budget(table, None, 10)
    assert budget.limit == budget.base_cost == budget.cheapest_cost
    assert {name for arch in feasible_architectures(table, budget) for name in arch.values()} == {"k3_relu", "k3_leaky", "k3_mish"}
    # so a level cannot tighten a budget of 1.0 here, and the search says so instead of staying silent
    assert budget.level_without_effect and "has no effect" in budget.to_dict()["note"]
    assert resolve_budget(table, None, 0).note() is None
    roomy = resolve_budget(table, 1.2, 5)  # above the cheapest, a level does tighten
    assert not roomy.level_without_effect and roomy.limit < 1.2 * roomy.base_cost


def test_levels_tighten_a_toy_table_without_a_note():
    table = _toy_table()
    assert all(resolve_budget(table, None, level).note() is None for level in range(11))


@pytest.mark.parametrize("ratio", [1.0, 1.08, 1.3])
def test_most_probable_within_budget_is_exact(ratio):
    table = _toy_table()
    budget = resolve_budget(table, ratio)
    gen = torch.Generator().manual_seed(1)
    probs = torch.softmax(torch.randn(4, 6, generator=gen) * 2 + torch.tensor([0, 0, 0, 2.0, 2.0, 2.0]), -1)
    as_dict = {label: dict(zip(CANDIDATES, row.tolist())) for label, row in zip(table.labels, probs)}
    chosen = most_probable_within_budget(as_dict, table, budget)
    assert budget.allows(table.cost(chosen))
    brute = max(
        (Architecture(zip(table.labels, names)) for names in itertools.product(CANDIDATES, repeat=4)),
        key=lambda a: sum(math.log(as_dict[label][name]) if budget.allows(table.cost(a)) else -1e9 for label, name in a.items()),
    )
    assert chosen == brute


# a separate process per run: Python salts str hashes per process, so a key built on hash() would hit in
# one process and miss in the next (the bug this guards against); the two runs get different hash seeds
_MEASURE_IN_A_PROCESS = """
import sys
from pathlib import Path

import torch

from autonn_nas.models.yolo import build_model
from autonn_nas.search.cost import latency

calls = []
measure = latency.measure_ms


def counting(*args, **kwargs):
    calls.append(1)
    return measure(*args, **kwargs)


latency.measure_ms = counting
torch.manual_seed(0)
model = build_model("yolov4-p5-search.yaml", nc=2, width=0.125, depth=0.33)
latency.measured_latency_table(model, 64, torch.device("cpu"), cache_path=Path(sys.argv[1]), warmup=1, repeats=1)
print(len(calls))
"""


def test_latency_cache_hits_across_processes(tmp_path):
    import os
    import subprocess
    import sys

    cache = tmp_path / "latency_cache.json"

    def measure(hash_seed: str) -> int:
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "OMP_NUM_THREADS": "1"}
        done = subprocess.run([sys.executable, "-c", _MEASURE_IN_A_PROCESS, str(cache)], capture_output=True, text=True,
                              env=env, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        return int(done.stdout.strip().splitlines()[-1])

    assert measure("1") > 0
    entries, size = json.loads(cache.read_text()), cache.stat().st_size
    assert measure("2") == 0  # every entry, the whole-model one included, came from the first process
    assert json.loads(cache.read_text()) == entries and cache.stat().st_size == size


def test_latency_device_chooses_where_latencies_are_measured(tmp_path):
    from autonn_nas.utils.device import latency_device
    from autonn_nas.utils.log import log_to_file

    cpu = torch.device("cpu")
    assert latency_device(None, cpu) is None and latency_device("cpu", cpu) == cpu
    if not torch.cuda.is_available():  # a CUDA target measured here: the search's device stands in, and says so
        with log_to_file(tmp_path / "log.txt"):
            assert latency_device("cuda", cpu) is None
        assert "no CUDA device, so latencies are measured on cpu" in (tmp_path / "log.txt").read_text()
    with pytest.raises(ValueError, match="latency_device 'tpu' is not one of cpu, cuda"):
        SearchSettings(latency_device="tpu").validate()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: a search on the GPU costing a CPU target")
def test_a_gpu_search_measures_a_cpu_target_on_the_cpu(tmp_path):
    model = build_model("yolov4-p5-search.yaml", nc=2, width=0.125, depth=0.33).cuda()
    table = build_cost_table(model, 64, "latency", torch.device("cuda:0"), cache_path=tmp_path / "c.json",
                             latency_device=torch.device("cpu"))
    assert "measured on cpu" in table.source and next(model.parameters()).is_cuda
