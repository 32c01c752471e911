"""Latency per candidate measured on the running device (warm-up, then the median of repeats), cached in a
JSON file keyed by device, torch version, shapes and a content hash; or read from a latency table measured
on a target elsewhere (the format CostTable.to_dict writes)."""
from __future__ import annotations

import hashlib
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable, Sequence

import torch

from autonn_nas.models.choice import MBottleneckCSP2, searchable_blocks, set_architecture
from autonn_nas.models.search_space import BASE_CANDIDATE, CANDIDATES
from autonn_nas.models.yolo import Model
from autonn_nas.search.arch import base_architecture
from autonn_nas.search.cost.counting import block_input_shapes, parameter_count
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
                key = _cache_key(device, name, shapes[label], f"params {parameter_count(op)}")
                if key not in cache:
                    cache[key] = measure_ms(lambda: op(x), device, warmup, repeats)
                entries[name] = cache[key]
            blocks[label] = entries
        base = base_architecture(blocks)
        previous = {label: b.active for label, b in searchable_blocks(model).items()}
        set_architecture(model, base)
        image = torch.randn(1, 3, img_size, img_size, device=device)
        key = _cache_key(device, "whole base model", image.shape[1:], f"params {sum(parameter_count(layer) for layer in model.model if not isinstance(layer, MBottleneckCSP2))} yaml {hashlib.sha256(json.dumps(model.yaml, sort_keys=True, default=str).encode()).hexdigest()[:16]}")
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
