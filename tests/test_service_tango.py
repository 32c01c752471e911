"""The stage dropped into a TANGO deployment of today, end to end over loopback: the project-manager stub in
its TANGO mode (known container ids only, HTTP 200 with an error text for any other, a 5 s timeout, the
epoch-summary fields checked) drives the stage started with NAS_PROFILE=tango, with a Django-style user id."""
from __future__ import annotations

import time
import urllib.parse

import pytest
import yaml

from autonn_nas.service.local_stack import http_get
from autonn_nas.service.paths import OUTBOX_FILE
from test_service_support import TINY_SETTINGS, Stack, copy_demo_dataset, needs_runner, write_project

pytestmark = [needs_runner, pytest.mark.slow]
USER, PROJECT = "jane.doe+nas@example.com", "tango-1_x"  # Django usernames (an id begins with a letter or digit)
JOB_TIMEOUT = 300


def _tango_stack(tmp_path, **env) -> Stack:
    stack = Stack(tmp_path, tango=True, extra_env={"NAS_PROFILE": "tango", **env})
    copy_demo_dataset(stack.shared)
    write_project(stack.shared, USER, PROJECT, settings=TINY_SETTINGS)
    return stack


def _pm_call(stack: Stack, endpoint: str) -> tuple[int, str]:
    """What TANGO's PM does: GET <stage>/<endpoint>?user_id&project_id through its 5 s timeout, quotes stripped."""
    query = urllib.parse.urlencode({"user_id": USER, "project_id": PROJECT})
    return http_get(f"{stack.stub_url}/stage/{endpoint}?{query}", timeout=30.0)


def test_tango_pm_runs_the_stage_as_autonn(tmp_path):
    stack = _tango_stack(tmp_path)
    try:
        assert _pm_call(stack, "start") == (200, "started")
        seen = stack.wait_for(("completed", "failed"), JOB_TIMEOUT, USER, PROJECT)
        assert seen[-1] == "completed", stack.job_log(USER, PROJECT)
        report = stack.wait_report(30, PROJECT)
        assert (report["container_id"], report["status"], report["user_id"]) == ("autonn", "completed", USER)
        assert stack.records("status_report_refused") == []
        summaries = [r for r in stack.records("status_update") if r["update_id"] == "epoch_summary"]
        assert summaries and all(r["missing_fields"] == [] and r["container_id"] == "autonn" for r in summaries)
        info = yaml.safe_load((stack.shared / "common" / USER / PROJECT / "neural_net_info.yaml").read_text())
        assert info["weight_file"] == ["bestmodel.pt", "bestmodel.torchscript", "bestmodel.onnx"]
        assert info["output_layout"] == "yolov9" and info["output_pred_format"][-1] == "probability_of_classes"
        assert not (stack.shared / "common" / USER / PROJECT / "neck_nas" / OUTBOX_FILE).exists()
    finally:
        stack.close()


def test_a_report_under_a_wrong_id_is_retried_logged_kept_and_delivered_after_a_restart(tmp_path):
    stack = _tango_stack(tmp_path, CONTAINER_ID="neck_nas")  # the stage's default id: TANGO's PM does not know it
    outbox = stack.shared / "common" / USER / PROJECT / "neck_nas" / OUTBOX_FILE
    try:
        assert _pm_call(stack, "start") == (200, "started")
        assert stack.wait_for(("completed", "failed"), JOB_TIMEOUT, USER, PROJECT)[-1] == "completed", stack.job_log(USER, PROJECT)
        # the job's own NAS_PM_ATTEMPTS tries are refused, then the report stays in the outbox (and the server
        # goes on re-sending it, refused each time)
        deadline = time.monotonic() + 60
        while "is kept in" not in stack.job_log(USER, PROJECT) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert outbox.is_file(), stack.job_log(USER, PROJECT)
        refused = stack.records("status_report_refused")
        assert len(refused) >= 3 and {r["container_id"] for r in refused} == {"neck_nas"}
        assert stack.records("status_report") == []
        log = stack.job_log(USER, PROJECT)
        assert "not an acknowledgement" in log and "is not one of autonn" in log
        assert "is not one of autonn" in stack.status(USER, PROJECT)["report_pending"]["last_reply"]
        stack.env["CONTAINER_ID"] = "autonn"
        stack.restart_stage()  # the next server start sends the kept report, under its own id
        report = stack.wait_report(60, PROJECT)
        assert (report["container_id"], report["status"], report["user_id"]) == ("autonn", "completed", USER)
        deadline = time.monotonic() + 30
        while outbox.is_file() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not outbox.exists()
    finally:
        stack.close()
