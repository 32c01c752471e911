"""Latency per candidate measured on the running device (warm-up, then the median of repeats), through
PyTorch or ONNX Runtime (runtimes.py), cached in a JSON file keyed by device, runtime, shapes and a content
hash; or read from a latency table measured on a target elsewhere (`autonn-nas latency-table` writes them:
the format CostTable.to_dict writes, with the device, runtime and date)."""
from __future__ import annotations

import hashlib
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch

from autonn_nas.models.choice import MBottleneckCSP2, model_space, searchable_blocks, set_architecture
from autonn_nas.models.search_space import BASE_CANDIDATE, SEED_SPACE, SearchSpace
from autonn_nas.models.yolo import Model
from autonn_nas.search.arch import base_architecture
from autonn_nas.search.cost.counting import block_input_shapes, parameter_count
from autonn_nas.search.cost.runtimes import make_runner, runtime_version
from autonn_nas.search.cost.table import CostTable
from autonn_nas.utils.files import atomic_write_json


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


def _cache_key(device: torch.device, what: str, shape: Sequence[int], signature: str, runtime: str = "torch") -> str:
    return f"{device_name(device)}|{runtime_version(runtime)}|{what}|in {'x'.join(map(str, shape))}|{signature}"


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
    runtime: str = "torch",
) -> CostTable:
    """Latency (ms, batch 1, eval mode) of every candidate of every block on `device` through `runtime`, at
    its real input size; the fixed part is the base architecture's whole-model latency minus its blocks'
    latencies. Entries already in the cache (same device, runtime version and shapes) are not measured again."""
    cache_path = cache_path or default_latency_cache()
    cache = _load_cache(cache_path)
    shapes = block_input_shapes(model, img_size)
    space = model_space(model)
    was_training = model.training
    model.eval()
    blocks: dict[str, dict[str, float]] = {}

    def measured(key: str, module: torch.nn.Module, x: torch.Tensor) -> float:
        if key not in cache:
            cache[key] = measure_ms(make_runner(module, x, device, runtime), device, warmup, repeats)
        return cache[key]

    try:
        with torch.no_grad():
            for label, block in searchable_blocks(model).items():
                x = torch.randn(1, *shapes[label], device=device)
                blocks[label] = {name: measured(_cache_key(device, name, shapes[label], f"params {parameter_count(block.candidates[name])}", runtime),
                                                block.candidates[name], x)
                                 for name in space.names}
            previous = {label: b.active for label, b in searchable_blocks(model).items()}
            set_architecture(model, base_architecture(blocks))
            image = torch.randn(1, 3, img_size, img_size, device=device)
            signature = (f"params {sum(parameter_count(layer) for layer in model.model if not isinstance(layer, MBottleneckCSP2))} "
                         f"yaml {hashlib.sha256(json.dumps(model.yaml, sort_keys=True, default=str).encode()).hexdigest()[:16]}")
            whole = measured(_cache_key(device, "whole base model", image.shape[1:], signature, runtime), model, image)
            set_architecture(model, previous)
    finally:
        model.train(was_training)
    fixed = max(whole - sum(entries[BASE_CANDIDATE] for entries in blocks.values()), 0.0)
    try:
        atomic_write_json(cache_path, cache)
    except OSError:
        pass  # a read-only home only costs re-measuring next time
    where = device_name(device) + ("" if runtime == "torch" else f" with {runtime_version(runtime)}")
    return CostTable("latency", fixed, blocks, img_size, source=f"measured on {where} (batch 1, median of {repeats})",
                     input_shapes=shapes, space=space)


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0


def load_latency_table(path: str | Path, labels: Sequence[str], space: SearchSpace = SEED_SPACE, img_size: int | None = None,
                       input_shapes: Mapping[str, Sequence[int]] | None = None) -> CostTable:
    """A latency table measured elsewhere (`autonn-nas latency-table` writes them): JSON {"fixed": ms, "blocks":
    {label: {candidate: ms}}, "img_size": N, ...}. A table measured for another search space, image size or
    width (its blocks' input shapes), or lacking a block or candidate, is a ValueError naming the file and
    the fix: a table only fits the search it was measured for."""
    path = Path(path)
    remeasure = "measure one for this search with `autonn-nas latency-table` (same --cfg, --img, --width, --depth)"
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise ValueError(f"cannot read latency table {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"latency table {path} is not valid JSON: {exc}") from None
    example = '{"fixed": 3.1, "blocks": {"m_16": {"k3_relu": 0.8, ...}, ...}, "img_size": 640}'
    if not isinstance(data, dict) or not isinstance(data.get("blocks"), dict) or not _number(data.get("fixed")):
        raise ValueError(f"latency table {path}: expected a JSON object like {example}")
    if data.get("space", space.name) != space.name:
        raise ValueError(f"latency table {path} was measured for the {data['space']} search space, this search uses the {space.name} one; {remeasure}")
    if img_size and data.get("img_size") and data["img_size"] != img_size:
        raise ValueError(f"latency table {path} was measured at image size {data['img_size']}, this search runs at {img_size}; {remeasure}")
    missing = [label for label in labels if label not in data["blocks"]]
    if missing:
        raise ValueError(f"latency table {path}: no entries for block(s) {', '.join(missing)}; the model's blocks are {', '.join(labels)}")
    measured_shapes = data.get("input_shapes") or {}
    for label in labels:
        if input_shapes and label in measured_shapes and list(measured_shapes[label]) != list(input_shapes[label]):
            raise ValueError(f"latency table {path}: block {label} was measured on {'x'.join(map(str, measured_shapes[label]))} inputs, "
                             f"this model's are {'x'.join(map(str, input_shapes[label]))} (another width or image size); {remeasure}")
    blocks = {}
    for label in labels:
        entries = data["blocks"][label]
        if not isinstance(entries, dict):
            raise ValueError(f"latency table {path}: block {label} must map candidate names to milliseconds, got {entries!r}")
        absent = [name for name in space.names if name not in entries]
        if absent:
            raise ValueError(f"latency table {path}: block {label} lacks candidate(s) {', '.join(absent)}; {remeasure}")
        wrong = [name for name in space.names if not _number(entries[name])]
        if wrong:
            raise ValueError(f"latency table {path}: block {label}: {', '.join(wrong)} must be milliseconds (numbers >= 0)")
        blocks[label] = {name: float(entries[name]) for name in space.names}
    about = ", ".join(str(data[key]) for key in ("device", "runtime", "date") if data.get(key)) or data.get("source")
    return CostTable("latency", float(data["fixed"]), blocks, int(data.get("img_size") or 0),
                     source=f"latency table {path}" + (f" ({about})" if about else ""), input_shapes=dict(measured_shapes), space=space)
