"""/stop: end a project's job and every process it started, within about a second whatever the job does.

The server writes `stopped` under the state lock before it signals, so a job finishing at that moment can no
longer commit `completed`; then SIGTERM to the job's process group, SIGKILL after the grace period, and the
job's outputs removed, the slow part in the background. A job frozen while holding the state lock (SIGSTOP,
a stalled disk) cannot run its SIGTERM handler and must not make /stop wait: after REQUEST_LOCK_WAIT_S its
processes are killed at once, and `stopped` is written when the kernel has freed the lock with them.
"""
from __future__ import annotations

import signal
import threading
import time
from typing import Callable

from autonn_nas.service import outbox
from autonn_nas.service import state as st
from autonn_nas.service.config import ServiceConfig
from autonn_nas.service.file_lock import LockTimeout
from autonn_nas.service.paths import ProjectPaths
from autonn_nas.service.refusals import StopRefused
from autonn_nas.utils.log import get_logger

log = get_logger("service.stop")

STOP_REPLY_S = 1.0  # /stop answers within about this, well inside the PM's 5 s timeout


class Stopper:
    def __init__(self, config: ServiceConfig, reconciled: Callable[[ProjectPaths, st.JobState | None], st.JobState | None]):
        self.config = config
        self._reconciled = reconciled  # the job manager's: a job found dead is marked failed first
        self.stopping: set[str] = set()  # ids of jobs killed by a /stop: their death is a stop, not a failure

    def stop(self, paths: ProjectPaths) -> str:
        """`stopped` when no job of the project runs after this call (it was stopped, or had ended), `completed` when
        it had completed (nothing to stop: its outputs and report stand); StopRefused for a project without a job.
        Answers within about STOP_REPLY_S, whatever the job does; the rest of a slow stop runs in the background."""
        if not paths.status_file.is_file():
            raise StopRefused("no job was ever started for this project")
        asked = time.monotonic()
        try:
            with st.locked(paths, timeout=st.REQUEST_LOCK_WAIT_S):
                # A job whose process is gone is marked failed first (and reported), and never signalled: its recorded
                # process group may belong to another process by now (a container restart starts pids afresh).
                state = self._reconciled(paths, st.read_status(paths)) or st.JobState()
                if not state.active:
                    return self._ended_word(state)
                # Written first, under the lock: a job that finishes now cannot commit `completed` any more.
                self.write_stopped(paths, state)
        except LockTimeout:
            return self._stop_lock_holder(paths, asked)
        pgid = state.pgid
        st.signal_group(pgid, signal.SIGTERM)
        # TANGO's PM gives up on a call after 5 s: answer within STOP_REPLY_S, and let a job that needs longer
        # to end (grace, then SIGKILL, then its outputs removed) finish in the background; its state is stopped
        deadline = asked + min(STOP_REPLY_S, self.config.stop_grace_s)
        while st.group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if st.group_alive(pgid):
            threading.Thread(target=self._finish_stop, args=(paths, pgid, state.job_id), daemon=True,
                             name=f"stop-{paths.project_id[:16]}").start()
        else:
            self._finish_stop(paths, pgid, state.job_id)
        return st.STOPPED

    @staticmethod
    def _ended_word(state: st.JobState) -> str:
        """/stop's answer for a job that was no longer running: it completed, or it is stopped/failed."""
        return st.COMPLETED if state.status == st.COMPLETED else st.STOPPED

    def write_stopped(self, paths: ProjectPaths, state: st.JobState) -> st.JobState:
        """Under the lock: the job is stopped; a report it kept before it was stopped is not sent (the PM asked)."""
        outbox.drop(paths, state.job_id)
        state = st.write_status(paths, state.replace(status=st.STOPPED, phase="stopped", finished_at=st.now_iso(), eta_s=None))
        st.append_to_log(paths, f"stop requested for job {state.job_id}")
        return state

    def _stop_lock_holder(self, paths: ProjectPaths, asked: float) -> str:
        """/stop when the state lock stays taken: its holder is stuck (a job frozen while writing its state). The
        job's processes are killed at once; its state is written under the lock the kernel frees with them."""
        state = st.read_status(paths) or st.JobState()  # written atomically: whole without the lock
        if not state.active:
            return self._ended_word(state)
        pgid, job_id = state.pgid, state.job_id
        if not job_id:
            raise StopRefused(f"{paths.status_file} names no job", 500)
        self.stopping.add(job_id)
        if st.group_alive(pgid, job_id):  # only the job's own processes: the recorded group may be another's by now
            log.warning("%s/%s: the state lock stayed taken; SIGKILL to job %s", paths.user_id, paths.project_id, job_id[:8])
            st.signal_group(pgid, signal.SIGKILL)
        deadline = asked + STOP_REPLY_S
        while st.group_alive(pgid, job_id) and time.monotonic() < deadline:
            time.sleep(0.02)
        try:
            with st.locked(paths, timeout=max(0.05, deadline - time.monotonic())):
                return self._stopped_after_kill(paths, job_id)
        except LockTimeout:  # held by something other than the job: finish when it lets go
            threading.Thread(target=self._stop_when_free, args=(paths, job_id), daemon=True,
                             name=f"stop-{paths.project_id[:16]}").start()
            return st.STOPPED

    def _stopped_after_kill(self, paths: ProjectPaths, job_id: str) -> str:
        """Under the lock, once the job was killed: `stopped` and its outputs removed, unless it committed first."""
        state = st.read_status(paths) or st.JobState()
        if state.job_id != job_id or not state.active:
            return self._ended_word(state)  # it completed before it died: its outputs and report stand
        self.write_stopped(paths, state)
        paths.remove_outputs()
        return st.STOPPED

    def _stop_when_free(self, paths: ProjectPaths, job_id: str) -> None:
        with st.locked(paths):
            self._stopped_after_kill(paths, job_id)

    def _finish_stop(self, paths: ProjectPaths, pgid: int | None, job_id: str | None) -> None:
        """The rest of a /stop: SIGKILL after the grace period, then the job's outputs are removed (unless a
        newer job owns the project by then: its outputs are its own)."""
        deadline = time.monotonic() + max(self.config.stop_grace_s - STOP_REPLY_S, 0.0)
        while st.group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if st.group_alive(pgid):
            st.append_to_log(paths, f"job did not end within {self.config.stop_grace_s:g}s of SIGTERM: SIGKILL")
            st.signal_group(pgid, signal.SIGKILL)
            deadline = time.monotonic() + 5.0
            while st.group_alive(pgid) and time.monotonic() < deadline:
                time.sleep(0.05)
        with st.locked(paths):
            if (st.read_status(paths) or st.JobState()).job_id == job_id:
                paths.remove_outputs()
        log.info("stopped %s/%s", paths.user_id, paths.project_id)
