"""The derivation on a large space and the lightweight_level knob (issue 15): the per-block dynamic programme
finds exactly what enumerating the space finds, the feasible set is counted and indexed without listing it,
and the derived cost never increases with the level and falls strictly below the base under every measure."""
from __future__ import annotations

import itertools
import math
import random

import pytest
import torch

from autonn_nas.models.search_space import BASE_CANDIDATE, EXTENDED_SPACE, SEED_SPACE
from autonn_nas.models.yolo import build_model
from autonn_nas.search.arch import Architecture
from autonn_nas.search.cost import CostTable, counted_cost_table, feasible_architectures, most_probable_within_budget, resolve_budget
from autonn_nas.search.cost.target_table import measure_target_table
from autonn_nas.search.evolution import Evaluated
from autonn_nas.search.strategies import strategy_class

LABELS = ["m_16", "m_21", "m_25", "m_29"]


def enumerated_most_probable(probabilities, table, budget):
    """The reference: every architecture of the space, the most probable within the budget, ties to more base
    candidates, then to the first in enumeration order (what the derivation did before the programme)."""
    best, best_key = None, (-math.inf, -1)
    for names in itertools.product(table.space.names, repeat=len(table.labels)):
        arch = Architecture(zip(table.labels, names))
        if not budget.allows(table.cost(arch)):
            continue
        score = sum(math.log(max(float(probabilities[label][name]), 1e-300)) for label, name in arch.items())
        bases = sum(name == BASE_CANDIDATE for name in arch.values())
        if score > best_key[0] + 1e-9 or (abs(score - best_key[0]) <= 1e-9 and bases > best_key[1]):
            best, best_key = arch, (max(score, best_key[0]), bases)
    return best


def _table(space, labels, rng: random.Random, kind: str) -> CostTable:
    if kind == "free activations":  # params / FLOPs: only kernel, depth and width cost; many exact ties
        entries = {label: {op.name: (2.0 if op.kernel == 3 else 5.0) * (op.depth or 3) * op.hidden * (i + 1) for op in space.candidates}
                   for i, label in enumerate(labels)}
    else:  # latency-like: every candidate its own cost
        entries = {label: {name: round(rng.uniform(1, 10), 3) for name in space.names} for label in labels}
    return CostTable("latency", 3.0, entries, 64, "toy", space=space)


def _probabilities(space, labels, rng: random.Random, uniform: bool) -> dict[str, dict[str, float]]:
    logits = torch.zeros(len(space)) if uniform else None
    return {label: dict(zip(space.names, torch.softmax(logits if uniform else torch.tensor([rng.gauss(0, 2) for _ in space.names]), 0).tolist()))
            for label in labels}


@pytest.mark.parametrize("kind", ["free activations", "latency-like"])
@pytest.mark.parametrize("uniform", [False, True], ids=["random", "uniform (all tied)"])
def test_the_programme_finds_what_enumeration_finds_on_the_seed_space(kind, uniform):
    rng = random.Random(7)
    for _ in range(4):
        table = _table(SEED_SPACE, LABELS, rng, kind)
        probabilities = _probabilities(SEED_SPACE, LABELS, rng, uniform)
        for ratio in (None, 1.15):
            for level in range(11):
                budget = resolve_budget(table, ratio, level)
                assert most_probable_within_budget(probabilities, table, budget) == enumerated_most_probable(probabilities, table, budget)


def test_the_programme_finds_what_enumeration_finds_on_an_extended_case():
    rng = random.Random(3)
    labels = LABELS[:3]  # 36^3 = 46,656 architectures: still enumerable here
    for kind in ("free activations", "latency-like"):
        table = _table(EXTENDED_SPACE, labels, rng, kind)
        probabilities = _probabilities(EXTENDED_SPACE, labels, rng, uniform=False)
        for level in (0, 4, 9):
            budget = resolve_budget(table, None, level)
            assert most_probable_within_budget(probabilities, table, budget) == enumerated_most_probable(probabilities, table, budget)


def test_the_feasible_set_is_the_enumerated_one_without_listing_it():
    rng = random.Random(5)
    table = _table(SEED_SPACE, LABELS, rng, "latency-like")
    budget = resolve_budget(table, None, 4)
    listed = [a for a in (Architecture(zip(LABELS, names)) for names in itertools.product(SEED_SPACE.names, repeat=4))
              if budget.allows(table.cost(a))]
    feasible = feasible_architectures(table, budget)
    assert len(feasible) == len(listed) and list(feasible) == listed
    assert all(feasible[k] == listed[k] for k in range(0, len(listed), 11)) and feasible[-1] == listed[-1]
    costliest = Architecture({label: max(entries, key=entries.__getitem__) for label, entries in table.blocks.items()})
    assert listed[0] in feasible and costliest not in feasible
    with pytest.raises(IndexError):
        feasible[len(listed)]
    big = _table(EXTENDED_SPACE, LABELS, rng, "latency-like")  # 36^4 = 1.7M architectures: counted, never listed
    roomy = feasible_architectures(big, resolve_budget(big, 10.0))
    assert len(roomy) == 36 ** 4 and big.cost(roomy.draw(random.Random(0))) > 0


MEASURES = ["params", "flops", "latency"]


@pytest.fixture(scope="module")
def extended_tables(tmp_path_factory):
    """The tiny extended supernet's cost tables: counted, and latency from a table measured here."""
    torch.manual_seed(0)
    model = build_model("yolov4-p5-search-ext.yaml", nc=2, width=0.125, depth=0.67)  # 24 candidates: depth 2 or 1, width 1 or 0.5
    tables = {measure: counted_cost_table(model, 64, measure) for measure in ("params", "flops")}
    measured = measure_target_table("yolov4-p5-search-ext.yaml", 64, 0.125, 0.67, 2, torch.device("cpu"), "torch", 1, 3)
    tables["latency"] = CostTable("latency", measured["fixed"], measured["blocks"], 64, "measured", space=tables["params"].space)
    return tables


@pytest.mark.parametrize("measure", MEASURES)
def test_the_level_never_raises_the_derived_cost_and_bites_under_every_measure(measure, extended_tables):
    table = extended_tables[measure]
    base = resolve_budget(table).base_cost
    rng = random.Random(11)
    for trial in range(6):
        # a trained supernet often prefers the costlier candidates: probabilities that grow with the cost
        lean = 0.0 if trial % 2 else 3.0
        probabilities = {}
        for label, entries in table.blocks.items():
            spread = max(entries.values()) - min(entries.values()) or 1.0
            logits = torch.tensor([lean * entries[name] / spread + rng.gauss(0, 1) for name in table.space.names])
            probabilities[label] = dict(zip(table.space.names, torch.softmax(logits, 0).tolist()))
        costs = [table.cost(most_probable_within_budget(probabilities, table, resolve_budget(table, None, level))) for level in range(11)]
        assert all(a >= b for a, b in zip(costs, costs[1:])), costs
        assert costs[10] == table.cheapest()[1] < base  # the last levels are strictly lighter than the base
        assert min(level for level, cost in enumerate(costs) if cost < base) <= 5, costs


def test_spos_derives_the_best_scored_architecture_within_each_level(extended_tables):
    """spos's view of a level: the best it scored within that budget, so its cost never rises with the level either."""
    table = extended_tables["flops"]
    model = build_model("yolov4-p5-search-ext.yaml", nc=2, width=0.125, depth=0.67)
    spos = strategy_class("spos")(model, lambda *a: None, table, resolve_budget(table), seed=0)
    rng = random.Random(2)
    drawn = {feasible for feasible in (spos.feasible.draw(rng) for _ in range(60))}
    spos.evaluated = sorted((Evaluated(a, (rng.random(),), table.cost(a)) for a in drawn), key=lambda e: e.key, reverse=True)
    picks = [spos.derive_within(resolve_budget(table, None, level)) for level in range(11)]
    costs = [table.cost(a) for a in picks if a is not None]
    assert picks[0] == spos.evaluated[0].arch and all(a >= b for a, b in zip(costs, costs[1:]))
