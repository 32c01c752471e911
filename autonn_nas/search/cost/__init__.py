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

The package, one idea per file: table.py (the additive table), counting.py (params and FLOPs on a meta
twin), latency.py (measurement and its cache, tables measured elsewhere), build.py (the table a search
uses), budget.py (the budget) and selection.py (what fits the budget, and the most probable architecture
within it), runtimes.py (PyTorch or ONNX Runtime for a measurement), target_table.py (a target's table, what
`autonn-nas latency-table` writes). Everything but target_table is re-exported here.
"""
from autonn_nas.search.cost.budget import Budget, resolve_budget
from autonn_nas.search.cost.build import build_cost_table
from autonn_nas.search.cost.counting import block_input_shapes, counted_cost_table, parameter_count
from autonn_nas.search.cost.latency import (
    default_latency_cache,
    device_name,
    load_latency_table,
    measure_ms,
    measured_latency_table,
)
from autonn_nas.search.cost.selection import (
    FeasibleSet,
    admissible_candidates,
    admissible_mask,
    feasible_architectures,
    most_probable_within_budget,
)
from autonn_nas.search.cost.table import LATENCY_TABLE_FORMAT, UNITS, CostTable

__all__ = [
    "LATENCY_TABLE_FORMAT",
    "UNITS",
    "Budget",
    "CostTable",
    "FeasibleSet",
    "admissible_candidates",
    "admissible_mask",
    "block_input_shapes",
    "build_cost_table",
    "counted_cost_table",
    "default_latency_cache",
    "device_name",
    "feasible_architectures",
    "load_latency_table",
    "measure_ms",
    "measured_latency_table",
    "most_probable_within_budget",
    "parameter_count",
    "resolve_budget",
]
