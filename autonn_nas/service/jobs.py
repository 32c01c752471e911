"""The server's side of a job's life: start, resume, stop, and noticing jobs that died.

A job is `python -m autonn_nas.service.job_main` in its own session (own process group), with its output
in <project>/neck_nas/job.log, so a crash, an out-of-memory kill or a /stop never touches the server, and
/stop can end every process the job started. The job writes its own progress and end state; the server
writes only what the job cannot: `started`, `stopped`, and `failed` for a job process found dead.

The state lock is held only for short read-modify-writes, and a request waits for it at most
st.REQUEST_LOCK_WAIT_S: a job frozen while holding it (SIGSTOP, a stalled disk) makes no request wait. /stop
then kills the job's processes at once (a frozen job cannot run its SIGTERM handler) and writes `stopped`
when the kernel has freed the lock with them.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from autonn_nas.service import outbox
from autonn_nas.service import state as st
from autonn_nas.service.config import ServiceConfig
from autonn_nas.service.file_lock import LockTimeout
from autonn_nas.service.job_inputs import load_job_inputs
from autonn_nas.service.paths import ProjectPaths, all_status_files
from autonn_nas.service.pm_client import PMClient
from autonn_nas.service.refusals import StartRefused
from autonn_nas.service.stopping import Stopper
from autonn_nas.utils.files import disk_problem
from autonn_nas.utils.log import get_logger

log = get_logger("service.jobs")

PATROL_S = 2.0  # how often the server looks for jobs that died unwatched (e.g. started by a previous server)
JOB_MODULE = "autonn_nas.service.job_main"


class JobManager:
    def __init__(self, config: ServiceConfig, pm: PMClient | None = None):
        self.config = config
        self.pm = pm or PMClient(config)
        self.courier = outbox.Courier(config, self.pm)
        # project folder -> why its last /start failed, where status.json could not say it (read-only, disk full)
        self._refusals: dict[Path, str] = {}
        self.stopper = Stopper(config, self._reconciled)

    def paths(self, user_id: str | None, project_id: str | None) -> ProjectPaths:
        return ProjectPaths.of(self.config.shared_dir, user_id, project_id)

    def start_background(self) -> None:
        """The server's own threads: the patrol for jobs that died unwatched, and the report courier."""
        threading.Thread(target=self._patrol, daemon=True, name="patrol").start()
        self.courier.start()

    # ---- start / resume -------------------------------------------------------------------------
    def start(self, paths: ProjectPaths, resume: bool = False) -> None:
        """After this call a job runs for the project (a new one, or the one already running); else StartRefused
        with the reason (also in /status and job.log where the project folder can be written)."""
        self.courier.wake()  # a /start may mean the PM is back: a report it did not take goes again at once
        if not paths.project_dir.is_dir():
            raise StartRefused(f"project folder {paths.project_dir} does not exist")
        what = "resume" if resume else "start"
        try:
            with st.locked(paths, timeout=st.REQUEST_LOCK_WAIT_S):
                self._refusals.pop(paths.project_dir, None)  # the folder takes writes again: status.json speaks
                started = self._start_locked(paths, resume, what)
        except LockTimeout:
            if (st.read_status(paths) or st.JobState()).active:
                return  # the project's job holds the lock: it runs, and /start is idempotent
            raise StartRefused(f"{paths.lock_file} stayed locked for {st.REQUEST_LOCK_WAIT_S:g}s; try again", 503) from None
        except OSError as exc:
            reason = f"cannot {what} the job: {disk_problem(exc) or exc}"
            self._refusals[paths.project_dir] = reason
            try:
                st.append_to_log(paths, f"{what} refused: {reason}")
            except OSError:
                pass  # the folder that cannot take the state cannot take the log either: /status says it
            raise StartRefused(reason, 500) from None
        if started is not None:
            job_id, process = started
            threading.Thread(target=self._watch, args=(paths, job_id, process), daemon=True, name=f"watch-{job_id[:8]}").start()
            log.info("%s %s/%s: job %s pid %d", "resumed" if resume else "started", paths.user_id, paths.project_id, job_id[:8], process.pid)

    def _start_locked(self, paths: ProjectPaths, resume: bool, what: str) -> tuple[str, subprocess.Popen] | None:
        """Under the lock: the new job and its process, or None when the project's job already runs."""
        state = self._reconciled(paths, st.read_status(paths))
        if state and state.active:
            return None  # idempotent: the same project never runs twice
        reason = self._nothing_to_resume(paths, state) if resume else None
        if reason:
            st.append_to_log(paths, f"resume refused, nothing to resume: {reason}")
            raise StartRefused(f"nothing to resume: {reason}")
        try:
            load_job_inputs(paths, resume=resume, nproc=self.config.nproc, build=False)  # bounded: nothing is built here
        except ValueError as exc:
            message = str(exc)
            st.append_to_log(paths, f"{what} refused: {message}")
            st.write_status(paths, self._base_state(paths, state).replace(
                status=st.FAILED, phase="inputs", error=message, finished_at=st.now_iso()))
            raise StartRefused(message) from None
        if not resume:
            paths.remove_outputs()
            # a fresh search must not leave an older job's checkpoint for a later /resume to pick up
            paths.search_checkpoint.unlink(missing_ok=True)
        job_id = uuid.uuid4().hex
        process = self._spawn(paths, job_id, resume)
        try:
            # a resumed job keeps its progress so far (epoch, epochs, progress); a fresh one starts from nothing
            st.write_status(paths, self._base_state(paths, state if resume else None).replace(
                status=st.STARTED, phase="starting", job_id=job_id, resumed=resume, pid=process.pid, pgid=process.pid,
                pid_start=st.process_start_ticks(process.pid), started_at=st.now_iso(), finished_at=None, error=None,
                eta_s=None, progress=(state.progress or 0.0) if resume and state else 0.0))
        except BaseException:
            st.signal_group(process.pid, signal.SIGKILL)  # a job whose state could not be written must not run
            raise
        return job_id, process

    @staticmethod
    def _nothing_to_resume(paths: ProjectPaths, state: st.JobState | None) -> str | None:
        """Why /resume has nothing to continue, or None when the last job failed or stopped after its first checkpoint."""
        if not state:
            return "no job was ever started"
        if state.status not in (st.FAILED, st.STOPPED):
            return f"the last job is {state.status}"
        if not paths.search_checkpoint.is_file():
            return (f"the last job ({state.status}) wrote no search checkpoint {paths.search_checkpoint}: "
                    "it ended before its first epoch finished; start it again")
        return None

    @staticmethod
    def _base_state(paths: ProjectPaths, previous: st.JobState | None) -> st.JobState:
        return (previous or st.JobState()).replace(user_id=paths.user_id, project_id=paths.project_id, log=str(paths.job_log))

    def _spawn(self, paths: ProjectPaths, job_id: str, resume: bool) -> subprocess.Popen:
        command = [sys.executable, "-m", JOB_MODULE, f"--user-id={paths.user_id}", f"--project-id={paths.project_id}", f"--job-id={job_id}"]
        if resume:
            command.append("--resume")
        st.append_to_log(paths, f"{'resuming' if resume else 'starting'} job {job_id}")
        with open(paths.job_log, "ab") as job_log:
            # start_new_session: own process group, so /stop reaches the DataLoader workers too, and signals
            # sent to the server (Ctrl-C, docker stop) do not reach the job.
            return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=job_log, stderr=subprocess.STDOUT,
                                    cwd=paths.run_dir, start_new_session=True, close_fds=True,
                                    env=os.environ | {st.JOB_ID_ENV: job_id})

    def _watch(self, paths: ProjectPaths, job_id: str, process: subprocess.Popen) -> None:
        code = process.wait()
        how = f"was killed by signal {-code} ({signal.Signals(-code).name})" if code < 0 else f"exited with code {code}"
        with st.locked(paths):
            state = st.read_status(paths)
            if state and state.job_id == job_id and state.active:
                self._ended_unexpectedly(paths, state, f"the job process {how} before finishing")

    # ---- dead jobs ------------------------------------------------------------------------------
    def _reconciled(self, paths: ProjectPaths, state: st.JobState | None) -> st.JobState | None:
        """Under the lock: a started/running job whose process is gone becomes `failed` (and is reported)."""
        if not state or not state.active:
            return state
        if st.process_alive(state.pid, state.pid_start):
            return state
        return self._ended_unexpectedly(paths, state, "the job process is no longer running (killed, out of memory, or the machine restarted)")

    def _ended_unexpectedly(self, paths: ProjectPaths, state: st.JobState, reason: str) -> st.JobState:
        """Under the lock, for an active job whose process is gone: `stopped` when this server was stopping it,
        else `failed`, reported to the PM (through the outbox) and resumable."""
        if state.job_id in self.stopper.stopping:  # killed by a /stop: its death is a stop, not a failure
            return self.stopper.write_stopped(paths, state)
        # Leftovers such as DataLoader workers are killed, but only processes of this job: after a restart the
        # recorded process group id may have been reused by another process (another project's job, even).
        if state.job_id and st.group_alive(state.pgid, state.job_id):
            st.signal_group(state.pgid, signal.SIGKILL)
        paths.remove_outputs()
        outbox.keep(paths, st.FAILED, state.job_id)
        state = st.write_status(paths, state.replace(status=st.FAILED, phase="died", error=reason, finished_at=st.now_iso()))
        st.append_to_log(paths, f"job {state.job_id} failed: {reason}")
        log.error("%s/%s failed: %s", paths.user_id, paths.project_id, reason)
        self.courier.wake()  # the report goes from the courier's thread: this one holds the state lock
        return state

    def reconcile(self, paths: ProjectPaths) -> st.JobState | None:
        """The project's state, with a dead job marked failed; unchecked (as last written) when the lock stays taken."""
        try:
            with st.locked(paths, timeout=st.REQUEST_LOCK_WAIT_S):
                return self._reconciled(paths, st.read_status(paths))
        except LockTimeout:
            return st.read_status(paths)

    def reconcile_all(self) -> None:
        """Jobs that died unwatched (with a previous server, or after it restarted) are reported failed and can be
        resumed. At server start, then every PATROL_S."""
        for status_file in all_status_files(self.config.shared_dir):
            project_dir = status_file.parent.parent
            try:
                paths = self.paths(project_dir.parent.name, project_dir.name)
                state = st.read_status(paths)
                if state and state.active:
                    self.reconcile(paths)
            except (ValueError, OSError) as exc:
                log.debug("check of %s skipped: %s", status_file, exc)

    def _patrol(self) -> None:
        while True:
            try:
                self.reconcile_all()
            except Exception:  # noqa: BLE001 - the patrol must outlive any one bad project
                log.exception("patrol round failed")
            time.sleep(PATROL_S)

    # ---- stop -----------------------------------------------------------------------------------
    def stop(self, paths: ProjectPaths) -> str:
        return self.stopper.stop(paths)

    # ---- status ---------------------------------------------------------------------------------
    def status_word(self, paths: ProjectPaths) -> str:
        if paths.project_dir in self._refusals:
            return st.FAILED
        if not paths.status_file.is_file():
            return st.READY
        state = self.reconcile(paths) or st.JobState()
        return state.status

    def status_detail(self, paths: ProjectPaths) -> dict[str, Any]:
        detail: dict[str, Any] = {"user_id": paths.user_id, "project_id": paths.project_id, "status": st.READY}
        if paths.project_dir in self._refusals:  # the last /start failed where no state could be written
            return detail | {"status": st.FAILED, "phase": "start", "error": self._refusals[paths.project_dir]}
        if not paths.status_file.is_file():
            if not paths.project_dir.is_dir():
                detail["error"] = f"project folder {paths.project_dir} does not exist"
            return detail
        state = self.reconcile(paths) or st.JobState()
        detail.update({k: v for k, v in state.to_dict().items() if k not in ("pid_start", "running_since_ts", "progress_at_run_start")})
        detail["outputs"] = paths.outputs() if state.status == st.COMPLETED else {}
        report = outbox.pending(paths)
        if report is not None:  # the end was not yet taken by the PM: when it was last tried, what it answered
            detail["report_pending"] = {key: report.get(key) for key in ("status", "since", "tries", "last_try", "last_reply")}
            detail["report_pending"]["next_try_in_s"] = self.courier.next_try_in(paths)
        return detail
