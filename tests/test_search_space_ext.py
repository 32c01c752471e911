"""The extended search space (yolov4-p5-search-ext.yaml, issue 15): each neck block also chooses its depth and
hidden width. Resolution per depth multiple, derivation to YOLO YAML rows, weight inheritance, every strategy
on it, and a whole search that ships a lighter model and exports it."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from autonn_nas.models.choice import model_space, searchable_blocks, set_architecture
from autonn_nas.models.search_space import EXTENDED_SPACE, SEED_SPACE
from autonn_nas.models.yolo import ConfigError, build_model, load_cfg
from autonn_nas.search.arch import Architecture, base_architecture
from autonn_nas.search.cost import counted_cost_table, resolve_budget
from autonn_nas.search.derive import derive_yaml, subnet_state_dict
from autonn_nas.search.settings import STRATEGIES
from autonn_nas.search.strategies import strategy_class
from autonn_nas.search.warm_start import warm_start
from autonn_nas.train.hyp import merge_hyp
from autonn_nas.train.loss import DetectionLoss, scaled_loss_gains

EXT = "yolov4-p5-search-ext.yaml"
LABELS = ["m_16", "m_21", "m_25", "m_29"]
HEAD_ROW = {"m_16": 5, "m_21": 10, "m_25": 14, "m_29": 18}
MINI = Path(__file__).resolve().parents[1] / "shared_volume" / "datasets" / "coco128_mini" / "dataset.yaml"


def _random_bn(model: torch.nn.Module) -> torch.nn.Module:
    """Non-trivial BN statistics, so that a wrongly mapped running_mean/var would show."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    return model.eval()


@pytest.fixture(scope="module")
def supernet():
    torch.manual_seed(0)
    return _random_bn(build_model(EXT, nc=3, width=0.125, depth=1.0))


@pytest.mark.parametrize("depth, count", [(1.0, 36), (0.67, 24), (0.33, 12)])
def test_the_space_resolves_by_depth_multiple_without_duplicate_blocks(depth, count):
    with torch.device("meta"):
        model = build_model(EXT, depth=depth)
    space = model_space(model)
    assert space.name == "extended" and len(space) == count and "k3_mish" in space.names
    structures = {(op.kernel, op.act, space.repeats(op, 3, depth), op.hidden) for op in space.candidates}
    assert len(structures) == count  # no two candidates are the same network
    block = searchable_blocks(model)["m_21"]
    for op in space.candidates:
        built = block.candidates[op.name]
        assert len(built.m) == space.repeats(op, 3, depth) and built.cv2.weight.shape[0] == int(128 * op.hidden)
    with torch.device("meta"):
        assert model_space(build_model("yolov4-p5-search.yaml", depth=depth)) == SEED_SPACE  # the default stays the seed's


def test_space_errors_name_the_file_and_the_fix(tmp_path):
    cfg = load_cfg(EXT)
    cfg["search_space"] = "huge"
    path = tmp_path / "bad.yaml"
    path.write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match=r"bad\.yaml: unknown search_space 'huge'; valid: seed, extended"):
        build_model(path)
    cfg = load_cfg(EXT)
    cfg["head"][5][1] = 2  # m_16 with 2 bottlenecks, the others 3: different candidate sets
    path.write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match="give every searchable row the same number"):
        build_model(path)


@pytest.mark.parametrize("name", EXTENDED_SPACE.names)
def test_every_candidate_derives_to_a_yolo_row_and_runs_the_supernet_s_weights(supernet, name):
    arch = base_architecture(LABELS).replace(m_21=name, m_29=name)
    cfg = derive_yaml(supernet.yaml, arch)
    op = EXTENDED_SPACE.candidate(name)
    plain = (op.kernel, op.act, op.hidden) == (3, "mish", 1.0)
    args = [128] if plain else [128, False, 1, 0.5, op.kernel, op.act, *([op.hidden] if op.hidden != 1.0 else [])]
    assert cfg["head"][HEAD_ROW["m_21"]] == [-1, op.depth or 3, "BottleneckCSP2", args]  # depth is the row's number
    assert cfg["head"][HEAD_ROW["m_16"]] == [-1, 3, "BottleneckCSP2", [256]] and "search_space" not in cfg
    derived = build_model(cfg).eval()
    derived.load_state_dict(subnet_state_dict(supernet, arch), strict=True)
    set_architecture(supernet, arch)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(derived(x)[0], supernet(x)[0], atol=1e-5)
    assert build_model(derived.yaml).yaml == cfg


def test_warm_start_fills_every_candidate_from_the_base_and_from_a_lighter_derived_model(tmp_path):
    torch.manual_seed(1)
    base = _random_bn(build_model("yolov4-p5.yaml", nc=3, width=0.125, depth=1.0))
    torch.save(base.state_dict(), tmp_path / "base.pt")
    supernet = build_model(EXT, nc=3, width=0.125, depth=1.0).eval()
    warm_start(supernet, tmp_path / "base.pt")
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        expected = base(x)[0]
        for name in ("k3_mish", "k5_mish"):  # full depth and width: the base block itself (5x5 zero-padded)
            set_architecture(supernet, {label: name for label in LABELS})
            assert torch.allclose(supernet(x)[0], expected, atol=1e-4), name
    source = base.model[21]
    for name, op in searchable_blocks(supernet)["m_21"].candidates.items():
        hidden = op.cv2.weight.shape[0]
        assert torch.equal(op.cv1.conv.weight, source.cv1.conv.weight[:hidden]), name  # the leading channels
        full = source.cv2.weight.shape[0]
        assert torch.equal(op.bn.running_mean[hidden:], source.bn.running_mean[full : full + hidden]), name  # the second half's
        assert len(op.m) <= len(source.m)
    # a search's bestmodel.pt of the extended space (lighter blocks) warm-starts a seed-space supernet
    arch = Architecture({"m_16": "k3_relu_n1_h50", "m_21": "k5_mish_n2", "m_25": "k3_mish", "m_29": "k3_leaky_h50"})
    lighter = _random_bn(build_model(derive_yaml(supernet.yaml, arch)))
    torch.save({"model_yaml": lighter.yaml, "state_dict": lighter.state_dict(), "arch": arch.to_dict()}, tmp_path / "best.pt")
    seed = build_model("yolov4-p5-search.yaml", nc=3, width=0.125, depth=1.0).eval()
    warm_start(seed, tmp_path / "best.pt")
    k3 = seed.model[16].candidates["k3_relu"]
    narrow = lighter.model[16].m[0].cv1.conv.weight  # 16 of the seed block's 32 hidden channels
    assert torch.equal(k3.m[2].cv1.conv.weight[:16, :16], narrow) and narrow.shape[0] == 16  # a missing bottleneck: the last one
    assert torch.equal(seed.model[25].candidates["k3_mish"].cv1.conv.weight, lighter.model[25].cv1.conv.weight)


@pytest.mark.parametrize("name", STRATEGIES)
def test_every_strategy_searches_the_extended_space_within_its_budget(name):
    torch.manual_seed(0)
    model = build_model(EXT, nc=2, width=0.125, depth=0.67).train()
    loss_fn = DetectionLoss(model, scaled_loss_gains(merge_hyp(), 2, 3, 64))
    table = counted_cost_table(model, 64, "flops")
    budget = resolve_budget(table, None, 5)
    strategy = strategy_class(name)(model, loss_fn, table, budget, seed=0)
    assert len(table.space) == 24 and (strategy.alpha is None or tuple(strategy.alpha.shape) == (4, 24))
    images = torch.rand(2, 3, 64, 64)
    targets = torch.tensor([[0, 1, 0.5, 0.5, 0.3, 0.4], [1, 0, 0.3, 0.6, 0.2, 0.2]])
    trained = {label: set() for label in LABELS}
    steps = max(len(names) for names in strategy.allowed.values())  # spos: one fair group
    for _ in range(steps if name == "spos" else 2):
        strategy.prepare_weight_step()
        loss, _ = loss_fn(model(images), targets)
        loss.backward()
        for label, block in searchable_blocks(model).items():
            trained[label] |= {n for n, op in block.candidates.items() if any(p.grad is not None for p in op.parameters())}
        model.zero_grad(set_to_none=True)
    for label in LABELS:
        assert trained[label] <= set(strategy.allowed[label])  # what the budget excludes never trains
        if name == "darts":  # the mixture trains every admissible candidate (spos's fair paths over the budget are redrawn)
            assert trained[label] == set(strategy.allowed[label])
    if strategy.alpha is not None:
        assert strategy.arch_step(images, targets)["arch_task_loss"] > 0
    scorer = type("Scorer", (), {"max_evaluations": 20, "seed": 0, "on_generation": lambda self, g, r: None,
                                 "score_many": lambda self, archs: [((-table.cost(a),), {"loss": table.cost(a)}) for a in archs]})()
    arch = strategy.derive(scorer)
    assert budget.allows(table.cost(arch)) and arch.validate(LABELS, table.space) is arch
    assert table.cost(arch) < budget.base_cost  # level 5 bites: the base does not fit


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_search_on_the_extended_space_ships_a_lighter_model(strategy, tmp_path):
    from autonn_nas.search.runner import run_search
    from autonn_nas.search.settings import SearchSettings
    from autonn_nas.train.checkpoint import load_checkpoint, model_from_checkpoint

    settings = SearchSettings(data=str(MINI), cfg=EXT, out=str(tmp_path / "run"), strategy=strategy, epochs=1, img_size=64,
                              batch_size=8, width=0.125, depth=0.33, workers=0, device="cpu", evaluations=6, progress=False,
                              lightweight_level=8, cost_measure="params")
    result = run_search(settings)
    report = json.loads(result.report.read_text())
    assert report["derived"]["cost_ratio"] < 1.0 and report["decision"]["shipped"] == "derived"  # the base is over the budget
    assert report["decision"]["base_over_budget"] and "none, the base architecture is over the budget" in (result.out_dir / "report.md").read_text()
    levels = [pick["cost_ratio"] for pick in report["pareto"]["levels"] if pick["cost_ratio"] is not None]
    assert all(a >= b for a, b in zip(levels, levels[1:])) and levels[-1] < 1.0
    assert {"shipped"} <= {mark for point in report["pareto"]["points"] for mark in point["marks"]}
    model = model_from_checkpoint(load_checkpoint(result.weights))  # the derived YAML and its weights fit strictly
    assert model.yaml == load_cfg(result.model_yaml)
    if strategy == "proxyless":  # the hand-off: an ONNX export of the lighter model, verified against PyTorch
        from autonn_nas.export.exporter import export_weights

        exported = export_weights(result.weights, "onnx", device="cpu")
        assert Path(exported.path).is_file()
