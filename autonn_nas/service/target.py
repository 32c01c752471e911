"""What project_info.yaml's target and learning keys do to a job: each is honoured or refused with a reason.

TANGO's PM describes the *deployment target* (`target_info`, `acc`, `memory`, `engine`), not the machine the
stage trains on, so the search still trains on this machine's GPU when it has one. The keys act where the
target matters:

- `acc` (cuda, opencl, cpu): cpu/cuda: latency costs (cost_measure latency, no table) are measured on that kind of
  device; cuda: the hand-off is exported for fp16, as TANGO's AutoNN does.
- `precision_level` (0..10): 10 keeps a cuda target's hand-off in fp32; below 10 fp16 is allowed.
- `learning_type`: normal: a fresh search; transfer / finetune: warm start from `weight_file` (TANGO's AutoNN also
  reads `weights`); incremental / hpo: refused, this stage does neither.
- `target_info`: `<shared>/latency_tables/<target_info>.json` (measured on the target by `autonn-nas latency-table`),
  when it exists, becomes the latency table and the cost measure.

neck_nas.yaml, the user's explicit settings, wins over every derived value (a note says so).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autonn_nas.service.paths import ProjectPaths, inside

ACCELERATORS = ("cuda", "opencl", "cpu")
FRESH_LEARNING = ("normal",)
WARM_START_LEARNING = ("transfer", "finetune")
REFUSED_LEARNING = {
    "incremental": "this stage searches a new neck; it does not continue an earlier model's training",
    "hpo": "this stage searches the neck architecture; it does not tune hyperparameters",
}
FULL_PRECISION_LEVEL = 10  # precision_level at which a cuda target keeps fp32
LATENCY_TABLES = "latency_tables"  # folder on the shared volume: <target_info>.json per target
WEIGHT_KEYS = ("weight_file", "weights")  # TANGO's PM writes weight_file; its AutoNN reads weights


class TargetInputError(ValueError):
    """A project_info.yaml key this stage cannot honour; the message names the file, the key and the fix."""


@dataclass
class TargetChoices:
    settings: dict[str, Any] = field(default_factory=dict)  # search settings derived from the keys
    half: bool = False  # fp16 hand-off
    notes: list[str] = field(default_factory=list)  # one line per key: what it did (log and report)


def level(info: dict[str, Any], key: str, source: Path) -> int | None:
    """An integer 0..10 key (lightweight_level, precision_level); None when absent."""
    value = info.get(key)
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = -1
    if not 0 <= number <= 10 or str(number) != str(value).strip():
        raise TargetInputError(f"{source}: {key} must be an integer 0..10, got {value!r}")
    return number


def project_file(paths: ProjectPaths, key: str, value: Any, source: Path) -> Path:
    """The existing file `value` (relative to the project folder) names, checked to be inside the shared volume."""
    if not isinstance(value, str) or not value:
        raise TargetInputError(f"{source}: {key} must be a file name, got {value!r}")
    try:
        resolved = inside(paths.shared_dir, paths.project_dir / value, key)
    except ValueError as exc:
        raise TargetInputError(f"{source}: {exc}") from None
    if not resolved.is_file():
        raise TargetInputError(f"{source}: {key} file {str(resolved)!r} does not exist")
    return resolved


def _word(info: dict[str, Any], key: str) -> str | None:
    value = info.get(key)
    return None if value is None or str(value).strip() == "" else str(value).strip().lower()


def _accelerator(info: dict[str, Any], source: Path, explicit: dict[str, Any], choices: TargetChoices) -> None:
    acc = _word(info, "acc")
    if acc is None:
        return
    if acc not in ACCELERATORS:
        raise TargetInputError(f"{source}: acc is {info['acc']!r}; this stage knows {', '.join(ACCELERATORS)}")
    precision = level(info, "precision_level", source)
    choices.half = acc == "cuda" and precision != FULL_PRECISION_LEVEL
    if acc == "cuda":
        why = (f"precision_level {precision} keeps fp32" if not choices.half
               else "fp16 export for a CUDA target" + (f" (precision_level {precision} < {FULL_PRECISION_LEVEL})" if precision is not None else ""))
        choices.notes.append(f"acc cuda: {why}")
    else:
        choices.notes.append(f"acc {acc}: fp32 export")
    if acc in ("cpu", "cuda"):
        if "latency_device" in explicit:
            choices.notes.append(f"acc {acc}: latency_device {explicit['latency_device']} from neck_nas.yaml kept")
        else:
            choices.settings["latency_device"] = acc
    else:
        choices.notes.append("acc opencl: no such device here to measure latencies on; give a latency table for the target "
                             f"({LATENCY_TABLES}/<target_info>.json) for latency costs")


def _learning(info: dict[str, Any], source: Path, paths: ProjectPaths, explicit: dict[str, Any], choices: TargetChoices) -> None:
    learning = _word(info, "learning_type") or "normal"
    weight_key = next((key for key in WEIGHT_KEYS if info.get(key) not in (None, "")), None)
    if learning in REFUSED_LEARNING:
        raise TargetInputError(f"{source}: learning_type {learning}: {REFUSED_LEARNING[learning]}; use normal, or transfer "
                               f"with weight_file")
    if learning in FRESH_LEARNING:
        if weight_key:
            choices.notes.append(f"learning_type normal: {weight_key} {info[weight_key]!r} not used (transfer would warm-start from it)")
        return
    if learning not in WARM_START_LEARNING:
        known = ", ".join((*FRESH_LEARNING, *WARM_START_LEARNING, *REFUSED_LEARNING))
        raise TargetInputError(f"{source}: learning_type {info['learning_type']!r} is not one of {known}")
    if "weights" in explicit:
        choices.notes.append(f"learning_type {learning}: weights from neck_nas.yaml kept")
        return
    if weight_key is None:
        raise TargetInputError(f"{source}: learning_type {learning} needs weight_file (the weights to start from)")
    weights = project_file(paths, weight_key, info[weight_key], source)
    choices.settings["weights"] = str(weights)
    choices.notes.append(f"learning_type {learning}: the supernet starts from {weights}")


def latency_table_for(paths: ProjectPaths, target: Any) -> Path | None:
    """`<shared>/latency_tables/<target_info>.json` when target_info is a plain name and that file exists."""
    name = str(target or "").strip()
    if not name or name.startswith(".") or any(c in name for c in "/\\\0"):
        return None
    candidate = paths.shared_dir / LATENCY_TABLES / f"{name}.json"
    try:
        candidate = inside(paths.shared_dir, candidate, "latency table")
    except ValueError:
        return None
    return candidate if candidate.is_file() else None


def _target_table(info: dict[str, Any], paths: ProjectPaths, explicit: dict[str, Any], choices: TargetChoices) -> None:
    target = info.get("target_info")
    if target in (None, ""):
        return
    table = latency_table_for(paths, target)
    if table is None:
        choices.notes.append(f"target_info {target}: no latency table at {paths.shared_dir / LATENCY_TABLES}/{target}.json; "
                             f"cost measure {explicit.get('cost_measure', 'flops')}")
        return
    if "latency_table" in explicit or explicit.get("cost_measure", "latency") != "latency":
        choices.notes.append(f"target_info {target}: table {table} not used, neck_nas.yaml sets the cost "
                             f"({explicit.get('latency_table') or explicit.get('cost_measure')})")
        return
    choices.settings.update(cost_measure="latency", latency_table=str(table))
    choices.settings.pop("latency_device", None)  # the table was measured on the target itself
    choices.notes.append(f"target_info {target}: latency table {table}")


def target_choices(info: dict[str, Any], source: Path, paths: ProjectPaths, explicit: dict[str, Any]) -> TargetChoices:
    """The settings, export precision and notes that project_info's target and learning keys ask for;
    `explicit` are neck_nas.yaml's settings, which win. Raises TargetInputError for a key it cannot honour."""
    choices = TargetChoices()
    _accelerator(info, source, explicit, choices)
    _learning(info, source, paths, explicit, choices)
    _target_table(info, paths, explicit, choices)
    return choices
