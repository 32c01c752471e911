"""Cost model of the neck search space and the budget a derived architecture must respect.

The cost of an architecture is additive: a fixed part (every layer that is not searchable) plus one
entry per searchable block for its chosen candidate. Entries are computed at the search image size:
- params: the candidate's parameter count;
- flops: FLOPs (2 x multiply-accumulates) of the candidate at its real input feature-map size, counted
  on a 'meta'-device twin (no memory, no real forward pass, so the full-size supernet costs nothing);
- latency: milliseconds measured on the running device (warm-up, then the median of repeats) at the
  same input sizes, cached in a JSON lookup table keyed by device, torch version and shapes; or read
  from a latency table file measured on a target elsewhere (the format this module writes).
Because the cost is additive, its expectation under per-block candidate probabilities is differentiable,
which the gradient strategies add to their architecture loss.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from autonn_nas.models.choice import MBottleneckCSP2, searchable_blocks, set_architecture
from autonn_nas.models.search_space import BASE_CANDIDATE, CANDIDATES
from autonn_nas.models.yolo import Model, build_model
from autonn_nas.search.arch import Architecture, base_architecture
from autonn_nas.search.settings import COST_MEASURES
from autonn_nas.utils.files import atomic_write_json

UNITS = {"params": "parameters", "flops": "FLOPs", "latency": "ms"}
LATENCY_TABLE_FORMAT = "autonn-nas latency table v1"
_TOLERANCE = 1e-9  # relative: float sums of the same entries may differ in the last bits


@dataclass
class CostTable:
    """Additive cost: `fixed` + sum over blocks of `blocks[label][candidate]`."""

    measure: str  # params | flops | latency
    fixed: float
    blocks: dict[str, dict[str, float]]
    img_size: int
    source: str  # how the entries were obtained (counted, measured on <device>, read from <file>)
    input_shapes: dict[str, list[int]] = field(default_factory=dict)  # label -> (c1, h, w) at img_size

    @property
    def unit(self) -> str:
        return UNITS[self.measure]

    @property
    def labels(self) -> list[str]:
        return list(self.blocks)

    def cost(self, arch: Mapping[str, str]) -> float:
        return self.fixed + sum(self.blocks[label][arch[label]] for label in self.blocks)

    def matrix(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """(blocks, candidates) tensor in CANDIDATES order: the per-block entries as one table."""
        rows = [[self.blocks[label][name] for name in CANDIDATES] for label in self.blocks]
        return torch.tensor(rows, dtype=torch.float64, device=device)

    def expected(self, probabilities: torch.Tensor) -> torch.Tensor:
        """Expected cost under per-block candidate probabilities (blocks, candidates); differentiable."""
        table = self.matrix(probabilities.device).to(probabilities.dtype)
        return self.fixed + (probabilities * table).sum()

    def cheapest(self) -> tuple[Architecture, float]:
        """The cheapest architecture of the space (ties: the earlier candidate; the cost is exact either way)."""
        choice = {label: min(CANDIDATES, key=lambda name: (entries[name], name != BASE_CANDIDATE)) for label, entries in self.blocks.items()}
        arch = Architecture(choice)
        return arch, self.cost(arch)

    def to_dict(self) -> dict:
        return {
            "format": LATENCY_TABLE_FORMAT if self.measure == "latency" else f"autonn-nas {self.measure} table v1",
            "measure": self.measure,
            "unit": self.unit,
            "img_size": self.img_size,
            "source": self.source,
            "fixed": self.fixed,
            "blocks": self.blocks,
            "input_shapes": self.input_shapes,
        }


# -- shapes, params and FLOPs ------------------------------------------------------------------------

def _meta_twin(model: Model) -> Model:
    with torch.device("meta"):
        return build_model(model.yaml)


def block_input_shapes(model: Model, img_size: int) -> dict[str, list[int]]:
    """(channels, height, width) of each searchable block's input for one img_size x img_size image,
    found by a forward pass of a 'meta' twin (shapes only)."""
    twin = _meta_twin(model)
    shapes: dict[str, list[int]] = {}
    hooks = []
    for label, block in searchable_blocks(twin).items():
        def record(_module, inputs, label=label):
            shapes[label] = list(inputs[0].shape[1:])
        hooks.append(block.register_forward_pre_hook(record))
    twin.eval()
    try:
        with torch.no_grad():
            twin(torch.empty(1, 3, img_size, img_size, device="meta"))
    finally:
        for hook in hooks:
            hook.remove()
    return shapes


def _count_flops(module: nn.Module, x: torch.Tensor) -> float:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        module(x)
    return float(counter.get_total_flops())


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def counted_cost_table(model: Model, img_size: int, measure: str) -> CostTable:
    """params or flops per candidate and block at img_size, from a 'meta' twin of `model`."""
    if measure not in ("params", "flops"):
        raise ValueError(f"counted_cost_table handles params and flops, not {measure!r}")
    shapes = block_input_shapes(model, img_size)
    twin = _meta_twin(model).eval()
    blocks_of_twin = searchable_blocks(twin)
    blocks: dict[str, dict[str, float]] = {}
    for label, block in blocks_of_twin.items():
        x = torch.empty(1, *shapes[label], device="meta")
        if measure == "params":
            blocks[label] = {name: float(_params(block.candidates[name])) for name in CANDIDATES}
        else:
            blocks[label] = {name: _count_flops(block.candidates[name], x) for name in CANDIDATES}
    set_architecture(twin, base_architecture(blocks))
    if measure == "params":
        total = float(sum(_params(layer) for layer in twin.model if not isinstance(layer, MBottleneckCSP2)))
        fixed = total
    else:
        fixed = _count_flops(twin, torch.empty(1, 3, img_size, img_size, device="meta")) - sum(
            entries[BASE_CANDIDATE] for entries in blocks.values()
        )
    return CostTable(measure, fixed, blocks, img_size, source=f"counted on the model structure at {img_size}x{img_size}", input_shapes=shapes)


# -- latency -----------------------------------------------------------------------------------------

def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{platform.processor() or platform.machine()}:{torch.get_num_threads()} threads"


def default_latency_cache() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "autonn_nas" / "latency_cache.json"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_ms(run: Callable[[], object], device: torch.device, warmup: int = 3, repeats: int = 10) -> float:
    """Median wall time of `run()` in milliseconds, after `warmup` untimed calls."""
    with torch.no_grad():
        for _ in range(warmup):
            run()
        _sync(device)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            _sync(device)
            times.append((time.perf_counter() - start) * 1000.0)
    return float(statistics.median(times))


def _cache_key(device: torch.device, what: str, shape: Sequence[int], signature: str) -> str:
    return f"{device_name(device)}|torch {torch.__version__}|{what}|in {'x'.join(map(str, shape))}|{signature}"


def _load_cache(path: Path) -> dict[str, float]:
    try:
        data = json.loads(path.read_text())
        return {str(k): float(v) for k, v in data.items()} if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def measured_latency_table(
    model: Model,
    img_size: int,
    device: torch.device,
    cache_path: Path | None = None,
    warmup: int = 3,
    repeats: int = 10,
) -> CostTable:
    """Latency (ms, batch 1, eval mode) of every candidate of every block on `device`, at its real input
    size; the fixed part is the base architecture's whole-model latency minus its blocks' latencies.
    Entries already in the cache (same device, torch version and shapes) are not measured again."""
    cache_path = cache_path or default_latency_cache()
    cache = _load_cache(cache_path)
    shapes = block_input_shapes(model, img_size)
    was_training = model.training
    model.eval()
    blocks: dict[str, dict[str, float]] = {}
    try:
        for label, block in searchable_blocks(model).items():
            x = torch.randn(1, *shapes[label], device=device)
            entries = {}
            for name in CANDIDATES:
                op = block.candidates[name]
                key = _cache_key(device, name, shapes[label], f"params {_params(op)}")
                if key not in cache:
                    cache[key] = measure_ms(lambda: op(x), device, warmup, repeats)
                entries[name] = cache[key]
            blocks[label] = entries
        base = base_architecture(blocks)
        previous = {label: b.active for label, b in searchable_blocks(model).items()}
        set_architecture(model, base)
        image = torch.randn(1, 3, img_size, img_size, device=device)
        key = _cache_key(device, "whole base model", image.shape[1:], f"params {sum(_params(layer) for layer in model.model if not isinstance(layer, MBottleneckCSP2))} yaml {hashlib.sha256(json.dumps(model.yaml, sort_keys=True, default=str).encode()).hexdigest()[:16]}")
        if key not in cache:
            cache[key] = measure_ms(lambda: model(image), device, warmup, repeats)
        set_architecture(model, previous)
    finally:
        model.train(was_training)
    fixed = max(cache[key] - sum(entries[BASE_CANDIDATE] for entries in blocks.values()), 0.0)
    try:
        atomic_write_json(cache_path, cache)
    except OSError:
        pass  # a read-only home only costs re-measuring next time
    return CostTable("latency", fixed, blocks, img_size, source=f"measured on {device_name(device)} (batch 1, median of {repeats})", input_shapes=shapes)


def load_latency_table(path: str | Path, labels: Sequence[str]) -> CostTable:
    """A latency table measured elsewhere: JSON {"fixed": ms, "blocks": {label: {candidate: ms}}, "img_size": N}."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise ValueError(f"cannot read latency table {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"latency table {path} is not valid JSON: {exc}") from None
    example = '{"fixed": 3.1, "blocks": {"m_16": {"k3_relu": 0.8, ...}, ...}, "img_size": 640}'
    if not isinstance(data, dict) or not isinstance(data.get("blocks"), dict) or "fixed" not in data:
        raise ValueError(f"latency table {path}: expected a JSON object like {example}")
    missing = [label for label in labels if label not in data["blocks"]]
    if missing:
        raise ValueError(f"latency table {path}: no entries for block(s) {', '.join(missing)}; the model's blocks are {', '.join(labels)}")
    blocks = {}
    for label in labels:
        entries = data["blocks"][label]
        absent = [name for name in CANDIDATES if name not in entries]
        if absent:
            raise ValueError(f"latency table {path}: block {label} lacks candidate(s) {', '.join(absent)}")
        blocks[label] = {name: float(entries[name]) for name in CANDIDATES}
    return CostTable("latency", float(data["fixed"]), blocks, int(data.get("img_size", 0)), source=f"latency table {path}" + (f" ({data['source']})" if data.get("source") else ""))


def build_cost_table(
    model: Model,
    img_size: int,
    measure: str,
    device: torch.device,
    latency_table: str | Path | None = None,
    cache_path: Path | None = None,
) -> CostTable:
    if measure not in COST_MEASURES:
        raise ValueError(f"cost measure {measure!r} is not one of {', '.join(COST_MEASURES)}")
    if latency_table:
        if measure != "latency":
            raise ValueError(f"a latency table was given but the cost measure is {measure!r}; use cost_measure latency with it")
        return load_latency_table(latency_table, list(searchable_blocks(model)))
    if measure == "latency":
        return measured_latency_table(model, img_size, device, cache_path)
    return counted_cost_table(model, img_size, measure)


# -- budget ------------------------------------------------------------------------------------------

@dataclass
class Budget:
    """The most a derived architecture may cost (`limit`, in the table's unit), and how it was set."""

    limit: float
    base_cost: float
    cheapest_cost: float
    ratio: float  # the requested budget relative to the base model (1.0 unless set)
    lightweight_level: int | None
    measure: str

    def allows(self, cost: float) -> bool:
        return cost <= self.limit * (1 + _TOLERANCE) + _TOLERANCE

    @property
    def level_without_effect(self) -> bool:
        """A lightweight_level above 0 that cannot tighten anything: the requested budget already is the cheapest
        architecture's cost. With params or FLOPs and a budget of 1.0 that is always so, because every 3x3
        candidate costs what the base block costs (activations are free in those measures)."""
        requested = self.ratio * self.base_cost
        return bool(self.lightweight_level) and self.cheapest_cost >= requested * (1 - _TOLERANCE) - _TOLERANCE

    def note(self) -> str | None:
        if not self.level_without_effect:
            return None
        return (f"lightweight_level {self.lightweight_level} has no effect: measured as {self.measure}, the cheapest architecture "
                f"already costs the requested budget ({self.ratio:g} x base); use the latency measure, where ReLU and "
                "LeakyReLU are cheaper than Mish, to trade accuracy for speed")

    def to_dict(self) -> dict:
        return {
            "note": self.note(),
            "measure": self.measure,
            "limit": self.limit,
            "limit_ratio_to_base": self.limit / self.base_cost if self.base_cost else None,
            "base_cost": self.base_cost,
            "cheapest_cost": self.cheapest_cost,
            "requested_ratio": self.ratio,
            "lightweight_level": self.lightweight_level,
        }


def resolve_budget(table: CostTable, ratio: float | None = None, lightweight_level: int | None = None) -> Budget:
    """Budget = ratio x base cost (default 1.0: no costlier than the base model); TANGO's
    lightweight_level L in 0..10 then moves it L/10 of the way toward the cheapest architecture of the
    space (level 10 = the cheapest), so every level is feasible. A ratio below what the cheapest
    architecture costs is an error that names that minimum."""
    base_cost = table.cost(base_architecture(table.labels))
    _, cheapest_cost = table.cheapest()
    requested = 1.0 if ratio is None else float(ratio)
    start = requested * base_cost
    if start < cheapest_cost * (1 - _TOLERANCE) - _TOLERANCE:
        minimum = cheapest_cost / base_cost if base_cost else float("nan")
        raise ValueError(
            f"budget {requested:g} x base ({start:,.6g} {table.unit}) is below the cheapest architecture of the search space "
            f"({cheapest_cost:,.6g} {table.unit} = {minimum:.4f} x base, measured as {table.measure}); use a budget of at least {minimum:.4f}"
        )
    limit = start
    if lightweight_level is not None:
        if not 0 <= int(lightweight_level) <= 10:
            raise ValueError(f"lightweight_level must be 0..10, got {lightweight_level}")
        limit = start - (int(lightweight_level) / 10.0) * (start - cheapest_cost)
    return Budget(limit, base_cost, cheapest_cost, requested, lightweight_level, table.measure)


def feasible_architectures(table: CostTable, budget: Budget) -> list[Architecture]:
    """Every architecture of the space within the budget, in enumeration order."""
    labels = table.labels
    result = []
    for names in itertools.product(CANDIDATES, repeat=len(labels)):
        arch = Architecture(zip(labels, names))
        if budget.allows(table.cost(arch)):
            result.append(arch)
    return result


def admissible_candidates(table: CostTable, budget: Budget) -> dict[str, list[str]]:
    """Per block, the candidates that appear in at least one architecture within the budget (in CANDIDATES
    order). The others can never be derived, so the strategies neither sample nor train them."""
    cheapest = {label: min(entries.values()) for label, entries in table.blocks.items()}
    floor = table.fixed + sum(cheapest.values())
    return {
        label: [name for name in CANDIDATES if budget.allows(floor - cheapest[label] + entries[name])]
        for label, entries in table.blocks.items()
    }


def admissible_mask(table: CostTable, budget: Budget, device: torch.device | str = "cpu") -> torch.Tensor:
    """(blocks, candidates) bool tensor of admissible_candidates."""
    allowed = admissible_candidates(table, budget)
    return torch.tensor([[name in allowed[label] for name in CANDIDATES] for label in table.labels], dtype=torch.bool, device=device)


_TIE = 1e-9  # log-probability difference below which two architectures are equally probable


def most_probable_within_budget(probabilities: Mapping[str, Mapping[str, float]], table: CostTable, budget: Budget) -> Architecture:
    """The architecture of highest probability (product over blocks; probabilities: label -> candidate ->
    probability) whose cost is within the budget, found exactly by enumerating the space (6^4 = 1296 for
    the P5 neck). Ties go to the architecture with more base candidates: equal evidence keeps the base."""
    import math

    best, best_key = None, (-math.inf, -1)
    for arch in feasible_architectures(table, budget):
        score = sum(math.log(max(float(probabilities[label][name]), 1e-300)) for label, name in arch.items())
        bases = sum(name == BASE_CANDIDATE for name in arch.values())
        if score > best_key[0] + _TIE or (abs(score - best_key[0]) <= _TIE and bases > best_key[1]):
            best, best_key = arch, (max(score, best_key[0]), bases)
    if best is None:  # resolve_budget guarantees the cheapest architecture fits
        raise ValueError(f"no architecture fits the budget {budget.limit:,.6g} {table.unit}")
    return best
