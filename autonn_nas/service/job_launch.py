"""A job's search on several processes (`nproc` in neck_nas.yaml, else NAS_NPROC): the job process is the
torchrun launcher itself.

The job starts torch's elastic launcher (what `torchrun --standalone --nproc-per-node N` runs) in its own
process, with a function as the entry point. So:
- the ranks are children of the job, started by multiprocessing (spawn), and stay in the job's process
  group: /stop's SIGTERM and SIGKILL to the group reach every rank and its DataLoader workers (the
  torchrun command would start each rank in a session of its own, out of the group's reach);
- rank 0 reports progress (status.json, the PM's status_update) through its own JobRecord; the other ranks
  report nothing;
- rank 0 hands the result back to the job, which places the outputs and reports the end as it does for
  one process;
- when a rank fails the launcher ends the others, and the job fails with the first failed rank's error.
"""
from __future__ import annotations

import os
import signal
import uuid
from typing import Any

from autonn_nas.search.settings import SearchSettings
from autonn_nas.service.config import ServiceConfig
from autonn_nas.service.paths import ProjectPaths

# the signals the launcher takes over while it runs (LaunchConfig.signals_to_handle): it ends the ranks, then raises
HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)


class RankFailed(RuntimeError):
    """A rank of the search failed; the message names the rank and its error."""


def check_nproc(settings: SearchSettings) -> None:
    """On CUDA each rank takes a GPU of its own: more ranks than GPUs is an input error, said before anything runs."""
    if settings.nproc == 1:
        return
    import torch

    from autonn_nas.utils.device import select_device

    if select_device(settings.device).type == "cuda" and settings.nproc > torch.cuda.device_count():
        raise ValueError(f"nproc {settings.nproc}: this machine has only {torch.cuda.device_count()} CUDA device(s); "
                         "set nproc (neck_nas.yaml or NAS_NPROC) to at most that")


def _rank_main(config: ServiceConfig, paths: ProjectPaths, job_id: str, settings: SearchSettings) -> dict[str, Any] | None:
    """One rank (RANK, WORLD_SIZE and the rendezvous come from the launcher's environment)."""
    from autonn_nas.search.result import portable_result
    from autonn_nas.search.runner import run_search
    from autonn_nas.service.job_record import JobRecord
    from autonn_nas.service.pm_client import PMClient
    from autonn_nas.utils.log import configure_logging

    configure_logging()  # a fresh (spawned) interpreter: its stderr is the job log too
    main = int(os.environ["RANK"]) == 0
    on_event = JobRecord(paths, job_id, PMClient(config)).on_event if main else None
    result = run_search(settings, on_event=on_event)
    return portable_result(result) if main else None


def run_search_on_ranks(config: ServiceConfig, paths: ProjectPaths, job_id: str, settings: SearchSettings) -> Any:
    """run_search on settings.nproc processes of this machine; the SearchResult of rank 0."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    from autonn_nas.search.result import result_from_portable

    # as torchrun does: one thread per rank unless told otherwise, or N ranks fight over the same cores
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    launch = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=settings.nproc, run_id=f"neck-nas-{job_id}-{uuid.uuid4().hex[:8]}",
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0, start_method="spawn")
    previous = {sig: signal.getsignal(sig) for sig in HANDLED_SIGNALS}
    try:
        results = elastic_launch(launch, _rank_main)(config, paths, job_id, settings)
    except ChildFailedError as error:
        rank, failure = error.get_first_failure()  # the earliest: the others usually fail because it did
        message = failure.message  # "ExceptionType: text", or a dict holding it and the traceback (in the job log already)
        message = message.get("message", message) if isinstance(message, dict) else message
        raise RankFailed(f"search rank {rank} of {settings.nproc} failed: {message}") from None
    except SignalException as stop:  # e.g. /stop's SIGTERM: the ranks are ended; what a stop means is the job's to say
        handler = previous.get(stop.sigval)
        if callable(handler):
            handler(stop.sigval, None)
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return result_from_portable(results[0])
