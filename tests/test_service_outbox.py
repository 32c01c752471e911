"""A report the PM did not take stays in the project's outbox and is re-sent until the PM takes it: when the PM
comes back while the server runs, without any other call (issue 18: it was tried for a few seconds, then lost)."""
from __future__ import annotations

from test_service_support import Stack, copy_demo_dataset, fake_runner_env, write_project


def test_report_waits_in_the_outbox_until_the_pm_comes_back(tmp_path):
    stack = Stack(tmp_path, pm_up=False, extra_env={**fake_runner_env(tmp_path, "finish"), "NAS_PM_RETRY_MAX_S": "1"})
    try:
        write_project(stack.shared)
        copy_demo_dataset(stack.shared)
        outbox = stack.shared / "common" / "demo_user" / "demo_project" / "neck_nas" / "outbox.json"
        assert stack.call("start") == (200, "started")
        assert stack.wait_for(("completed", "failed"), 120)[-1] == "completed", stack.job_log()
        # the job's own tries (NAS_PM_ATTEMPTS 3) failed, then the server's: /status says so, with the PM's answer
        detail = stack.wait_detail(lambda d: (d.get("report_pending") or {}).get("tries", 0) > 3, "server-side retries")
        pending = detail["report_pending"]
        assert pending["status"] == "completed" and "ConnectionError" in pending["last_reply"], pending
        stack.start_pm()  # the PM comes back; nobody calls the stage
        report = stack.wait_report(30)
        assert (report["status"], report["project_id"]) == ("completed", "demo_project")
        stack.wait_detail(lambda d: "report_pending" not in d, "the outbox emptied", 30)
        assert not outbox.exists()
        assert len(stack.records("status_report")) == 1  # delivered once, then no more
    finally:
        stack.close()
