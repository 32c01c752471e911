"""`autonn-nas demo`: the whole stage on the embedded demo project, as a TANGO PM would drive it.

Starts the PM stub and the stage server as real processes on loopback, copies the embedded demo project
and dataset (shared_volume/) to a working shared folder (the repository stays clean), calls /start
through the stub, prints progress, and ends when the stub receives `completed` (exit 0) or `failed` (1).
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
import urllib.parse
from pathlib import Path

import yaml

from autonn_nas.service.local_stack import free_port, http_get, start_pm_stub, start_stage
from autonn_nas.service.paths import MODEL_YAML, SETTINGS_FILE

DEMO_USER, DEMO_PROJECT = "demo_user", "demo_project"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shared-dir", type=Path, default=Path("runs/demo_shared"),
                        help="working shared volume, recreated on each run (default runs/demo_shared)")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                        help="a search setting for the project's neck_nas.yaml, e.g. --set epochs=1 --set img_size=64 (repeatable)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="give up after this many seconds (default 3600)")
    parser.add_argument("--poll", type=float, default=2.0, help="seconds between progress lines")


def _parse_settings(pairs: list[str]) -> dict:
    settings = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key.strip():
            raise ValueError(f"--set expects KEY=VALUE (e.g. --set epochs=1), got {pair!r}")
        settings[key.strip()] = yaml.safe_load(value)
    return settings


def _progress_line(detail: dict) -> str:
    parts = [detail.get("status", "?")]
    if detail.get("phase"):
        parts.append(f"phase {detail['phase']}")
    if detail.get("epochs"):
        parts.append(f"epoch {detail.get('epoch') or 0}/{detail['epochs']}")
    if detail.get("progress") is not None:
        parts.append(f"{100 * float(detail['progress']):.0f}%")
    if detail.get("eta_s") is not None:
        parts.append(f"eta {float(detail['eta_s']):.0f}s")
    if detail.get("error"):
        parts.append(f"error: {detail['error']}")
    return " | ".join(parts)


def run(args: argparse.Namespace) -> int:
    overrides = _parse_settings(args.settings)  # a typo ends here, before any process starts
    shared = args.shared_dir.resolve()
    if shared.exists():
        shutil.rmtree(shared)
    shared.mkdir(parents=True)
    stage_port, stub_port = free_port(), free_port()
    stage_url, stub_url = f"http://127.0.0.1:{stage_port}", f"http://127.0.0.1:{stub_port}"
    query = urllib.parse.urlencode({"user_id": DEMO_USER, "project_id": DEMO_PROJECT})
    print(f"shared volume: {shared}\nlogs: {shared / 'stage.log'}, {shared / 'pm_stub.log'}")
    stub = start_pm_stub(shared, stage_url, stub_port, shared / "pm_stub.log", record=shared / "pm_records.jsonl")
    stage = None
    try:
        stage = start_stage(shared, stub_url, stage_port, shared / "stage.log", {"NAS_STATUS_UPDATES": "1",
                                                                                  "NAS_QUEUE_LOCK": str(shared / ".queue.lock")})
        print(f"stage {stage_url} and PM stub {stub_url} are up")
        code, body = http_get(f"{stub_url}/create_project?{query}")
        if code != 200:
            print(f"could not create the demo project: {body}")
            return 1
        project_dir = shared / "common" / DEMO_USER / DEMO_PROJECT
        if overrides:
            (project_dir / SETTINGS_FILE).write_text(yaml.safe_dump(overrides))
        code, word = http_get(f"{stub_url}/stage/start?{query}")
        print(f"/start -> {word} ({code})")
        if word != "started":
            print(json.dumps(json.loads(http_get(f"{stage_url}/status?{query}")[1]), indent=2))
            return 1
        return _follow(stage_url, stub_url, query, project_dir, args)
    finally:
        if stage:
            try:  # jobs live in their own sessions: end ours explicitly (a no-op once it finished)
                http_get(f"{stage_url}/stop?{query}", timeout=30)
            except OSError:
                pass
            stage.stop()
        stub.stop()


def _follow(stage_url: str, stub_url: str, query: str, project_dir: Path, args: argparse.Namespace) -> int:
    deadline = time.monotonic() + args.timeout
    last_line = ""
    while time.monotonic() < deadline:
        detail = json.loads(http_get(f"{stage_url}/status?{query}")[1])
        line = _progress_line(detail)
        if line != last_line:
            print(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True)
            last_line = line
        reports = json.loads(http_get(f"{stub_url}/records?kind=status_report")[1])
        if reports:
            outcome = reports[-1].get("status")
            print(f"PM stub received status_report: {outcome}")
            if outcome == "completed":
                detail = json.loads(http_get(f"{stage_url}/status?{query}")[1])
                print(f"architecture: {detail.get('architecture')}")
                if detail.get("decision"):
                    print(f"decision: {detail['decision'].get('reason')}")
                if detail.get("metrics"):
                    from autonn_nas.search.report import val_summary

                    print(val_summary(detail["metrics"]))
                print(f"derived model YAML: {project_dir / MODEL_YAML}")
                for name, path in (detail.get("outputs") or {}).items():
                    print(f"  {name}: {path}")
                return 0
            print(f"reason: {detail.get('error')}\njob log: {project_dir / 'neck_nas' / 'job.log'}")
            return 1
        time.sleep(args.poll)
    print(f"no report within {args.timeout:g}s; job log: {project_dir / 'neck_nas' / 'job.log'}")
    return 1
