"""The progress events a search sends while it runs, under the names TANGO's project manager knows
(`update_id` of its `status_update`), and the type of the callback that receives them.

The search only emits; the stage (service/job_record.py) turns them into status.json progress and PM calls.
"""
from __future__ import annotations

from typing import Any, Callable

EventFn = Callable[[str, dict[str, Any]], None]

NAS_START = "nas_start"  # settings, budget and data split, once per (resumed) run
EPOCH_SUMMARY = "epoch_summary"  # one row of history.json per supernet epoch
EVOLUTION_SEARCH = "evolution_search"  # one generation of spos's scoring
RETRAIN_START = "retrain_start"  # the shipped network's fine-tuning begins (search/retrain.py): epochs done and to do, inherited val mAP
NAS_END = "nas_end"  # the shipped architecture, its metrics and output paths

ALL = (NAS_START, EPOCH_SUMMARY, EVOLUTION_SEARCH, RETRAIN_START, NAS_END)

# the `phase` of an epoch_summary row: a supernet epoch, or an epoch of the retrain (which TANGO's PM charts
# as epochs too: its rows carry run_epoch / run_epochs, their place among all the run's epochs)
SUPERNET_TRAINING = "supernet_training"
RETRAINING = "retraining"


def emit(on_event: EventFn | None, update_id: str, content: dict[str, Any]) -> None:
    """Send one event when someone listens (on_event is None on ranks other than 0, and without the stage)."""
    assert update_id in ALL, update_id
    if on_event is not None:
        on_event(update_id, content)
