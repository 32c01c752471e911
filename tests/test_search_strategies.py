"""Strategies on a tiny supernet with synthetic batches: what each step runs, that architecture steps
move the logits and leave the weights alone, state round trips, derivation within the budget; plus
the architecture-step schedule, spos's evolutionary search, BN recalibration and the OOM fallback."""
from __future__ import annotations

import random

import pytest
import torch

from autonn_nas.models.choice import searchable_blocks, set_architecture
from autonn_nas.models.search_space import BASE_CANDIDATE, CANDIDATES
from autonn_nas.models.yolo import build_model
from autonn_nas.search import evolution
from autonn_nas.search.arch import Architecture
from autonn_nas.search.batch_size import fit_batch_size
from autonn_nas.search.bn_recalibration import recalibrate_bn
from autonn_nas.search.cost import CostTable, counted_cost_table, feasible_architectures, resolve_budget
from autonn_nas.search.loop import ArchStepSchedule, arch_learning_rate, arch_step_interval
from autonn_nas.search.settings import STRATEGIES
from autonn_nas.search.strategies import STRATEGY_CLASSES, strategy_class
from autonn_nas.train.hyp import merge_hyp
from autonn_nas.train.loss import DetectionLoss, scaled_loss_gains

IMG = 64


@pytest.fixture()
def setup():
    torch.manual_seed(0)
    model = build_model("yolov4-p5-search.yaml", nc=2, width=0.125, depth=0.33).train()
    loss_fn = DetectionLoss(model, scaled_loss_gains(merge_hyp(), 2, 3, IMG))
    table = counted_cost_table(model, IMG, "flops")
    images = torch.rand(2, 3, IMG, IMG)
    targets = torch.tensor([[0, 1, 0.5, 0.5, 0.3, 0.4], [1, 0, 0.3, 0.6, 0.2, 0.2]])
    return model, loss_fn, table, images, targets


def test_registry_names_every_strategy():
    assert tuple(STRATEGY_CLASSES) == STRATEGIES
    with pytest.raises(ValueError, match="proxyless, darts, spos"):
        strategy_class("random")


def test_registration_refuses_a_name_the_settings_lack_or_a_taken_one():
    from autonn_nas.search.strategies import SearchStrategy, register_strategy

    class Unlisted(SearchStrategy):
        name = "unlisted"

    class Impostor(SearchStrategy):
        name = "darts"

    with pytest.raises(ValueError, match="settings.STRATEGIES"):
        register_strategy(Unlisted)
    with pytest.raises(ValueError, match="taken"):
        register_strategy(Impostor)
    assert tuple(STRATEGY_CLASSES) == STRATEGIES and "unlisted" not in STRATEGY_CLASSES


def test_settings_and_the_search_command_do_not_import_torch():
    # `autonn-nas --help` and settings validation read settings.STRATEGIES; the registry behind it imports torch
    import subprocess
    import sys

    code = "import sys, autonn_nas.search.settings, autonn_nas.commands.search; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize("name", STRATEGIES)
def test_weight_step_runs_the_strategy_s_paths(name, setup):
    model, loss_fn, table, images, targets = setup
    strategy = strategy_class(name)(model, loss_fn, table, resolve_budget(table, 10.0), seed=0)
    strategy.prepare_weight_step()
    loss, _ = loss_fn(model(images), targets)
    loss.backward()
    for block in searchable_blocks(model).values():
        touched = [n for n, op in block.candidates.items() if any(p.grad is not None for p in op.parameters())]
        if name == "darts":
            assert block.mixture is not None and touched == list(CANDIDATES)
        else:  # one path: memory and time of one network
            assert block.mixture is None and touched == [block.active]


@pytest.mark.parametrize("name", [n for n in STRATEGIES if STRATEGY_CLASSES[n].has_arch_weights])
def test_arch_step_leaves_weights_and_bn_statistics_alone(name, setup):
    """An architecture step reads held-out images: neither the weights (their gradients being accumulated
    included) nor the BN running statistics may change. Whether the logits move the right way is
    test_search_decides.py's business (moving at all proves nothing: a cost term alone moves them)."""
    model, loss_fn, table, images, targets = setup
    strategy = strategy_class(name)(model, loss_fn, table, resolve_budget(table, 10.0), seed=0)
    state = {k: v.clone() for k, v in model.state_dict().items() if "num_batches" not in k}
    for _ in range(3):
        out = strategy.arch_step(images, targets)
    assert out["arch_task_loss"] > 0 and out["cost_term"] == 0.0
    assert all(p.grad is None for p in model.parameters())  # the weight gradients being accumulated are untouched
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    assert all(b.mixture is None and b.gate is None for b in searchable_blocks(model).values())
    assert model.training


@pytest.mark.parametrize("name", STRATEGIES)
def test_state_round_trip_restores_sampling_and_logits(name, setup):
    model, loss_fn, table, images, targets = setup
    budget = resolve_budget(table, 1.2)
    a = strategy_class(name)(model, loss_fn, table, budget, seed=3)
    a.arch_step(images, targets)
    state = a.state_dict()
    a.prepare_weight_step()
    path_a = [b.active for b in searchable_blocks(model).values()]
    b = strategy_class(name)(model, loss_fn, table, budget, seed=99)
    b.load_state_dict(state)
    b.prepare_weight_step()
    assert [blk.active for blk in searchable_blocks(model).values()] == path_a
    if a.alpha is not None:
        assert torch.equal(b.probabilities(), torch.softmax(state["alpha"], -1))
    with pytest.raises(ValueError, match="strategy"):
        strategy_class("darts" if name != "darts" else "proxyless")(model, loss_fn, table, budget).load_state_dict(state)


@pytest.mark.parametrize("name", ["proxyless", "darts"])
def test_derive_respects_the_budget_even_when_5x5_is_most_probable(name, setup):
    model, loss_fn, table, *_ = setup
    budget = resolve_budget(table)
    strategy = strategy_class(name)(model, loss_fn, table, budget)
    with torch.no_grad():
        strategy.alpha.copy_(torch.tensor([[0, 0, 0.5, 3, 3, 3.0]] * 4))
    arch = strategy.derive()
    assert budget.allows(table.cost(arch)) and set(arch.values()) == {"k3_mish"}
    loose = strategy_class(name)(model, loss_fn, table, resolve_budget(table, 10.0))
    loose.alpha.data.copy_(strategy.alpha.data)
    assert set(loose.derive().values()) == {"k5_relu"}  # the earliest of the tied most probable (none is the base)


@pytest.mark.parametrize("total", [1, 2, 3, 16, 1000])
@pytest.mark.parametrize("every", [1, 4, 50])
def test_arch_steps_happen_within_any_run(total, every):
    schedule = ArchStepSchedule(total, every=every)
    steps = schedule.steps_in(0, total)
    assert steps >= 1  # the prior art's fixed warm-up left default runs with none
    if total >= 4:
        assert schedule.start == int(0.25 * total) and steps == len(range(schedule.start, total, every))


@pytest.mark.parametrize("epochs, per_epoch, expected_steps", [(1, 16, 0), (3, 16, 0), (10, 13, 0), (20, 101, 2020 - 1000), (100, 16, 1600 - 1000)])
def test_prior_art_schedule_reproduces_its_fixed_warmup(epochs, per_epoch, expected_steps):
    """The comparison setting: no architecture step before max(3 epochs, 1000 iterations), so TANGO's default
    run (1 epoch of coco128: 16 iterations) and even our 10-epoch CPU benchmark never take one."""
    total = epochs * per_epoch
    schedule = ArchStepSchedule.prior_art(total, per_epoch)
    assert schedule.start == max(3 * per_epoch, 1000)
    assert schedule.steps_in(0, total) == expected_steps == schedule.to_dict()["arch_steps"]
    assert ArchStepSchedule(total).steps_in(0, total) >= 1  # ours, on the same run


def test_arch_steps_take_one_held_out_pass_per_epoch_and_lr_fits_the_run():
    assert arch_step_interval(100, 25) == 4 and arch_step_interval(13, 4) == 4 and arch_step_interval(3, 10) == 1
    assert arch_step_interval(100, 5) == 4  # a small held-out part is cycled: at least one step every 4 iterations
    assert arch_learning_rate(2) == 0.05 and arch_learning_rate(100) == 0.01 and arch_learning_rate(55_000) == 1e-3


def _toy_table() -> CostTable:
    per = {"k3_relu": 1.0, "k3_leaky": 2.0, "k3_mish": 3.0, "k5_relu": 11.0, "k5_leaky": 12.0, "k5_mish": 13.0}
    return CostTable("latency", 100.0, {label: dict(per) for label in ("m_16", "m_21", "m_25", "m_29")}, 64, "toy")


def _synthetic_score(arch: Architecture):
    # best: k5_mish where affordable; a score with a unique optimum under the budget
    value = sum(CANDIDATES.index(name) * (i + 1) for i, name in enumerate(arch.values()))
    return (value, 0.0), {"fitness": float(value), "loss": 0.0}


def _synthetic_scores(archs: list[Architecture]):
    return [_synthetic_score(arch) for arch in archs]


def test_spos_search_is_exhaustive_when_affordable_and_stays_in_budget():
    table = _toy_table()
    budget = resolve_budget(table, 1.1)
    feasible = feasible_architectures(table, budget)
    ranked, mode = evolution.search(table, budget, _synthetic_scores, len(feasible), random.Random(0))
    assert mode == "exhaustive" and len(ranked) == len(feasible)
    best = max(feasible, key=lambda a: _synthetic_score(a)[0])
    assert ranked[0].arch == best


def test_spos_evolution_respects_evaluation_and_cost_budgets():
    table = _toy_table()
    budget = resolve_budget(table, 1.3)
    calls, batches = [], []

    def score_many(archs):
        calls.extend(archs)
        batches.append(len(archs))
        return _synthetic_scores(archs)

    ranked, mode = evolution.search(table, budget, score_many, 40, random.Random(0))
    assert mode == "evolution" and len(calls) == 40 == len(set(calls))
    assert batches == [10, 10, 10, 10]  # the population, then whole generations: what ranks can split
    assert all(budget.allows(table.cost(a)) for a in calls)
    again, _ = evolution.search(table, budget, _synthetic_scores, 40, random.Random(0))
    assert [e.arch for e in again] == [e.arch for e in ranked]  # reproducible with the seed


def test_spos_evolution_beats_random_sampling_on_a_separable_score():
    table = _toy_table()
    budget = resolve_budget(table, 10.0)  # every architecture fits: 1296, far more than 100 evaluations
    space = feasible_architectures(table, budget)
    evolved = [evolution.search(table, budget, _synthetic_scores, 100, random.Random(s))[0][0].key[0] for s in range(5)]
    sampled = [max(_synthetic_score(a)[0][0] for a in random.Random(s).sample(space, 100)) for s in range(5)]
    assert sum(evolved) > sum(sampled) and max(evolved) == 50  # the optimum: k5_mish everywhere


def test_bn_recalibration_estimates_the_active_path_statistics():
    torch.manual_seed(0)
    model = build_model("yolov4-p5-search.yaml", nc=2, width=0.125, depth=0.33)
    set_architecture(model, {label: "k5_relu" for label in searchable_blocks(model)})
    batches = [(torch.randint(0, 255, (2, 3, IMG, IMG), dtype=torch.uint8), torch.zeros(0, 6), ["a", "b"], None) for _ in range(3)]
    used = recalibrate_bn(model, batches, 2)
    assert used == 2 and not model.training
    first = model.model[0]
    x = torch.cat([b[0] for b in batches[:2]]).float() / 255
    with torch.no_grad():
        y = first.conv(x)
    assert torch.allclose(first.bn.running_mean, y.mean((0, 2, 3)), atol=1e-4)
    untouched = searchable_blocks(model)["m_16"].candidates[BASE_CANDIDATE].cv1.bn
    assert torch.equal(untouched.running_mean, torch.zeros_like(untouched.running_mean))  # off the path: reset


def test_out_of_memory_halves_the_batch_until_it_fits():
    tried = []

    def step(batch):
        tried.append(batch)
        if batch > 4:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    assert fit_batch_size(step, 32) == 4 and tried == [32, 16, 8, 4]

    def never(batch):
        raise torch.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(ValueError, match="batch size 1"):
        fit_batch_size(never, 2)


@pytest.mark.parametrize("name", STRATEGIES)
def test_memory_probe_runs_the_heaviest_configuration(name, setup):
    model, loss_fn, table, images, targets = setup
    strategy = strategy_class(name)(model, loss_fn, table, resolve_budget(table, 10.0))
    strategy.prepare_memory_probe()
    blocks = searchable_blocks(model).values()
    if name == "darts":
        assert all(b.mixture is not None for b in blocks)
    else:
        assert all(b.mixture is None and b.active.startswith("k5") for b in blocks)
    loss, _ = loss_fn(model(images), targets)
    loss.backward()
