"""One search job of the stage, run as its own process by the server:

    python -m autonn_nas.service.job_main --user-id U --project-id P --job-id ID [--resume]

It waits its turn on the machine's queue lock, runs the search, places the outputs, and reports the end
(completed or failed, whatever the cause) to the project manager. Its stdout/stderr are the job log.
With nproc > 1 (neck_nas.yaml, else NAS_NPROC) it is the torchrun launcher of the search's ranks
(service/job_launch.py).
"""
from __future__ import annotations

import argparse
import signal
import sys
import traceback

from autonn_nas.models.yolo import cfg_to_yaml
from autonn_nas.service import outbox
from autonn_nas.service import state as st
from autonn_nas.service.config import ServiceConfig
from autonn_nas.service.job_inputs import check_dataset_inside, load_job_inputs
from autonn_nas.service.job_launch import RankFailed, check_nproc, run_search_on_ranks
from autonn_nas.service.job_record import JobCancelled, JobRecord
from autonn_nas.service.model_inputs import check_model_size
from autonn_nas.service.paths import ProjectPaths
from autonn_nas.service.pm_client import PMClient
from autonn_nas.service.queue import queue_turn
from autonn_nas.utils.files import atomic_write_text, disk_problem
from autonn_nas.utils.log import configure_logging, get_logger

log = get_logger("service.job")


class JobStopped(BaseException):
    """SIGTERM from /stop (a BaseException, so no `except Exception` in the search swallows it)."""


def _on_sigterm(signum, frame):
    raise JobStopped()


def _reason(exc: BaseException) -> str:
    """What /status says about an unexpected error: the disk's errno when the disk caused it, out of memory, or a bug."""
    disk = disk_problem(exc)
    if disk:
        return f"cannot write: {disk}; free space on the shared volume (or make it writable), then /resume"
    kind = "out of memory" if "out of memory" in str(exc).lower() else "internal error"
    return f"{kind}: {type(exc).__name__}: {exc}"


def run_job(config: ServiceConfig, paths: ProjectPaths, job_id: str, resume: bool) -> int:
    pm = PMClient(config)
    record = JobRecord(paths, job_id, pm)
    outcome = None
    try:
        inputs = load_job_inputs(paths, resume=resume, nproc=config.nproc)
        check_dataset_inside(paths, inputs.dataset_yaml)
        check_nproc(inputs.settings)
        params = check_model_size(inputs.settings, inputs.search_cfg)
        log.info("the searched model has %.1f M parameters", params / 1e6)
        log.info("job %s for %s/%s: settings %s", job_id, paths.user_id, paths.project_id, inputs.settings.to_dict())
        if inputs.search_cfg is not None:
            atomic_write_text(inputs.settings.cfg, cfg_to_yaml(inputs.search_cfg))
        for note in inputs.notes:
            log.info("project input: %s", note)
        record.update(phase="queued", input_notes=list(inputs.notes))
        with queue_turn(config.queue_lock, on_wait=lambda: log.info("another search runs on this machine; queued")):
            record.running()
            # Imported here: the search stack is heavy, and a bad project should fail fast without it.
            from autonn_nas.search.report import add_stage_inputs
            from autonn_nas.search.runner import run_search

            if inputs.settings.nproc > 1:
                result = run_search_on_ranks(config, paths, job_id, inputs.settings)
            else:
                result = run_search(inputs.settings, on_event=record.on_event)
            log.info("search finished: %s", result.arch)
            if inputs.notes:
                add_stage_inputs(result.report, inputs.notes)
            outputs = record.complete(result, inputs)
        log.info("outputs: %s", outputs)
        outcome = st.COMPLETED
    except JobStopped:
        record.stopped()
        log.info("job %s stopped", job_id)
        return 0
    except JobCancelled as exc:
        log.info("job %s ends: %s", job_id, exc)
        return 0
    except (ValueError, RankFailed) as exc:  # bad inputs (DatasetError, ConfigError, settings errors); a rank's named error
        log.error("failed: %s", exc)
        outcome = st.FAILED if record.fail(str(exc)) else None
    except BaseException as exc:  # noqa: BLE001 - a bug must still be reported as failed
        log.error("failed with an unexpected error:\n%s", traceback.format_exc())
        reason = _reason(exc)
        log.error("failed: %s", reason)
        outcome = st.FAILED if record.fail(reason) else None
    if outcome:  # the report was kept in the outbox with the final state; the server re-sends it if this fails
        outbox.deliver(pm, paths)
    return 0 if outcome == st.COMPLETED else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autonn_nas.service.job_main", description=__doc__)
    parser.add_argument("--user-id", required=True)
    parser.add_argument("--project-id", required=True)
    parser.add_argument("--job-id", required=True)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    configure_logging()  # this process's stderr is the job log
    signal.signal(signal.SIGTERM, _on_sigterm)
    config = ServiceConfig.from_env()
    paths = ProjectPaths.of(config.shared_dir, args.user_id, args.project_id)
    return run_job(config, paths, args.job_id, args.resume)


if __name__ == "__main__":
    sys.exit(main())
