"""The job's own writes to status.json, and its progress events to the project manager.

Every write re-reads the state under the lock and checks that it still belongs to this job: when the
server marked it stopped (or a newer job replaced it), the job ends instead of overwriting that.
"""
from __future__ import annotations

import time
from typing import Any

import torch

from autonn_nas.search import events
from autonn_nas.service import outbox
from autonn_nas.service import state as st
from autonn_nas.service.handoff import export_device, export_for_engine, neural_net_info, place_outputs, search_img_size
from autonn_nas.service.job_inputs import JobInputs
from autonn_nas.service.paths import ProjectPaths
from autonn_nas.service.pm_client import PMClient
from autonn_nas.service.progress import tango_epoch_summary
from autonn_nas.utils.log import get_logger

log = get_logger("service.job")

PHASE_OF_EVENT = {events.NAS_START: "search", events.EVOLUTION_SEARCH: "evolution_search", events.RETRAIN_START: events.RETRAINING,
                  events.NAS_END: "deriving"}


class JobCancelled(Exception):
    """The state on disk no longer belongs to this job (stopped, or replaced)."""


class JobRecord:
    def __init__(self, paths: ProjectPaths, job_id: str, pm: PMClient):
        self.paths = paths
        self.job_id = job_id
        self.pm = pm

    def _own_state(self) -> st.JobState:
        state = st.read_status(self.paths) or st.JobState()
        if state.job_id != self.job_id:
            raise JobCancelled("a newer job owns this project")
        if not state.active:
            raise JobCancelled(f"the job was marked {state.status}")
        return state

    def update(self, **changes: Any) -> st.JobState:
        with st.locked(self.paths):
            return st.write_status(self.paths, self._own_state().replace(**changes))

    def running(self) -> None:
        with st.locked(self.paths):
            state = self._own_state()
            st.write_status(self.paths, state.replace(status=st.RUNNING, phase="search", running_since_ts=time.time(),
                                                      progress_at_run_start=state.progress or 0.0))

    def on_event(self, update_id: str, content: dict[str, Any]) -> None:
        """The search runner's progress callback: status.json progress/ETA, and the same event to the PM
        (the runner sends nas_start, epoch_summary, evolution_search and nas_end)."""
        with st.locked(self.paths):
            state = self._own_state()
            changes: dict[str, Any] = {"last_event": update_id}
            if update_id == events.EPOCH_SUMMARY:
                epoch, epochs = content.get("epoch"), content.get("epochs")
                changes["phase"] = content.get("phase") or state.phase
                if isinstance(epoch, int) and isinstance(epochs, int) and epochs > 0:
                    # The runner counts epochs from 0; progress counts finished epochs, of the phase (epoch x/N) and of
                    # the whole run (supernet and retrain epochs: run_epoch / run_epochs)
                    done = epoch + 1
                    progress, eta = st.progress_eta(state, content.get("run_epoch", epoch) + 1, content.get("run_epochs", epochs))
                    changes.update(epoch=done, epochs=epochs, progress=round(progress, 4), eta_s=eta)
                    if done >= epochs and changes["phase"] != events.RETRAINING:
                        # the supernet is trained; choosing and evaluating the architecture has no ETA
                        changes.update(phase="deriving", eta_s=None)
            elif update_id in PHASE_OF_EVENT:
                changes["phase"] = PHASE_OF_EVENT[update_id]
                if update_id == events.RETRAIN_START:  # /status counts the retrain's epochs from here: epoch x/N
                    changes.update(epoch=content.get("epoch"), epochs=content.get("epochs"))
            st.write_status(self.paths, state.replace(**changes))
        if update_id == events.EPOCH_SUMMARY:  # TANGO's PM charts read its own field names; ours stay beside them
            started = state.running_since_ts
            content = {**content, **tango_epoch_summary(content, time.time() - started if started else None)}
        self.pm.status_update(self.paths.user_id, self.paths.project_id, update_id, content)

    def complete(self, result: Any, inputs: JobInputs) -> dict[str, str]:
        """Export, place the outputs, then commit: `completed` and its report, in one short step under the lock.

        Nothing slow runs under the lock (a /stop must never wait for it): the exports are made in the run folder
        and the outputs placed (each atomically) before; a /stop meanwhile wins, and the job then removes them."""
        from autonn_nas.data import load_dataset_config

        dataset = load_dataset_config(inputs.dataset_yaml)
        fallback = inputs.settings.resolve_defaults(on_gpu=torch.cuda.is_available()).img_size
        img_size = search_img_size(result.report, dict(result.metrics or {}), fallback)
        self.update(phase="exporting")
        layout = self.pm.config.output_layout
        exports, skipped = export_for_engine(result.weights, inputs.project_info.get("engine"), img_size, result.out_dir,
                                             check_images=dataset.val, layout=layout, half=inputs.half)
        info = neural_net_info(result.model_yaml, img_size, dataset.names, exports, skipped, layout=layout,
                               precision_note=export_device(inputs.half)[1])
        self.update(phase="placing")
        outputs = place_outputs(self.paths, result.model_yaml, result.weights, info, [export.path for export in exports.values()])
        with st.locked(self.paths):
            try:
                state = self._own_state()
            except JobCancelled:
                self._remove_outputs_if_stopped()
                raise
            outbox.keep(self.paths, st.COMPLETED, self.job_id)
            st.write_status(self.paths, state.replace(
                status=st.COMPLETED, phase="done", progress=1.0, eta_s=0, error=None, finished_at=st.now_iso(),
                outputs=outputs, architecture=str(result.arch), report=str(result.report), metrics=_jsonable(result.metrics),
                # what shipped and why (the base unless the searched architecture beat it beyond noise)
                decision=_jsonable((result.metrics or {}).get("decision"))))
        return outputs

    def fail(self, reason: str) -> bool:
        """Mark the job failed with `reason`; False when the state is no longer this job's (nothing to report)."""
        with st.locked(self.paths):
            try:
                state = self._own_state()
            except JobCancelled:
                return False
            self.paths.remove_outputs()
            outbox.keep(self.paths, st.FAILED, self.job_id)
            st.write_status(self.paths, state.replace(status=st.FAILED, error=reason, eta_s=None, finished_at=st.now_iso()))
        return True

    def stopped(self) -> None:
        """On SIGTERM (a /stop): the job's outputs go, and its state says `stopped` (the server wrote it first)."""
        with st.locked(self.paths):
            state = st.read_status(self.paths) or st.JobState()
            if state.job_id != self.job_id or state.status in (st.COMPLETED, st.FAILED):
                return  # a newer job owns the project, or this one had ended: leave its files alone
            self.paths.remove_outputs()
            outbox.drop(self.paths, self.job_id)
            if state.active:  # a SIGTERM not from /stop
                st.write_status(self.paths, state.replace(status=st.STOPPED, phase="stopped", finished_at=st.now_iso()))

    def _remove_outputs_if_stopped(self) -> None:
        """Under the lock, when the commit found the state no longer this job's: placed outputs of a stopped job go."""
        state = st.read_status(self.paths) or st.JobState()
        if state.job_id == self.job_id and state.status == st.STOPPED:
            self.paths.remove_outputs()


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "item"):
        return value.item()
    return str(value)
