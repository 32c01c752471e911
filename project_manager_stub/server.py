"""The PM stub's HTTP server.

Receives what a stage sends a TANGO PM:
  GET  /status_report?container_id=&user_id=&project_id=&status=   -> "ok" (recorded)
  POST /status_update  {container_id, user_id, project_id, update_id, update_content}  -> "ok" (recorded)
and lets a test or a person drive the stage like a PM:
  GET  /records[?kind=status_report|status_update]  -> JSON list of what was received, oldest first
  GET  /create_project?user_id=&project_id=[&template=demo_user/demo_project]  -> "created"
  GET  /stage/<start|stop|resume|status_request|status>?user_id=&project_id=  -> the stage's reply
  GET  /healthz -> "ok"

With --tango it behaves as TANGO's current project manager does where that matters to a stage: it knows only
the container ids of its CONTAINER_INFO table and answers a status_report under another id with HTTP 200
and an error text (a taken report gets a small JSON body); it calls the stage with a 5 s timeout and strips
quotes from the reply; and it checks each epoch_summary for the fields its summary table reads (records
the missing ones under "missing_fields").
"""
from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from project_manager_stub.projects import DEFAULT_TEMPLATE, create_project

STAGE_ENDPOINTS = ("start", "stop", "resume", "status_request", "status")
# TANGO's PM: the containers it calls and takes reports from (id -> (hostname, port))
TANGO_CONTAINERS = {"autonn": ("autonn", 8100), "autonn_cl": ("autonn-cl", 8102), "code_gen": ("codeGen", 8888),
                    "cloud_deploy": ("cloud_deploy", 8890), "kube_deploy": ("kube_deploy", 8901),
                    "ondevice_deploy": ("ondevice_deploy", 8891)}
TANGO_TIMEOUT_S = 5.0  # its requests.get(..., timeout=5)
TANGO_EPOCH_FIELDS = ("current_epoch", "total_epoch", "train_loss_box", "train_loss_obj", "train_loss_cls",
                      "train_loss_total", "val_acc_P", "val_acc_R", "val_acc_map50", "val_acc_map", "epoch_time",
                      "total_time")


class Recorder:
    """Every call received, in memory and (optionally) appended to a JSON-lines file."""

    def __init__(self, record_file: Path | None):
        self.record_file = record_file
        self.records: list[dict] = []
        self.lock = threading.Lock()

    def add(self, kind: str, data: dict) -> None:
        entry = {"kind": kind, "time": time.time(), **data}
        with self.lock:
            self.records.append(entry)
            if self.record_file:
                self.record_file.parent.mkdir(parents=True, exist_ok=True)
                with open(self.record_file, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps(entry) + "\n")

    def list(self, kind: str | None = None) -> list[dict]:
        with self.lock:
            return [r for r in self.records if kind is None or r["kind"] == kind]


class StubServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, shared: Path, stage_url: str, demo_volume: Path, record_file: Path | None, tango: bool = False):
        super().__init__(address, Handler)
        self.tango = tango
        self.shared = shared
        self.stage_url = stage_url.rstrip("/")
        self.demo_volume = demo_volume
        self.recorder = Recorder(record_file)


class Handler(BaseHTTPRequestHandler):
    server: StubServer

    def log_message(self, fmt, *args):  # one line per call on stderr, with the stub's name
        print(f"[pm-stub] {self.address_string()} {fmt % args}", flush=True)

    def _reply(self, code: int, body: str | bytes, content_type: str = "text/plain") -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _query(self) -> tuple[str, dict[str, str]]:
        parsed = urllib.parse.urlsplit(self.path)
        return parsed.path, dict(urllib.parse.parse_qsl(parsed.query))

    def do_GET(self):
        path, query = self._query()
        if path == "/status_report":
            if self.server.tango:
                container = query.get("container_id", "")
                if container not in TANGO_CONTAINERS:  # TANGO's PM: HTTP 200, the error's text, and nothing moves on
                    self.server.recorder.add("status_report_refused", query)
                    return self._reply(200, f"Error: container_id '{container}' is not one of {', '.join(TANGO_CONTAINERS)}")
                self.server.recorder.add("status_report", query)
                return self._reply(200, json.dumps({"status": "success", "container_id": container}), "application/json")
            self.server.recorder.add("status_report", query)
            return self._reply(200, "ok")
        if path == "/records":
            return self._reply(200, json.dumps(self.server.recorder.list(query.get("kind"))), "application/json")
        if path == "/healthz":
            return self._reply(200, "ok")
        if path == "/create_project":
            try:
                target = create_project(self.server.shared, query.get("user_id", ""), query.get("project_id", ""),
                                        self.server.demo_volume, query.get("template", DEFAULT_TEMPLATE))
            except (ValueError, OSError) as exc:
                return self._reply(400, f"failed: {exc}")
            self.server.recorder.add("create_project", {"path": str(target), **query})
            return self._reply(200, "created")
        if path.startswith("/stage/") and path[len("/stage/"):] in STAGE_ENDPOINTS:
            return self._call_stage(path[len("/stage/"):], query)
        return self._reply(404, "not found")

    def do_POST(self):
        path, _ = self._query()
        if path != "/status_update":
            return self._reply(404, "not found")
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            return self._reply(400, "body is not JSON")
        record = body if isinstance(body, dict) else {"body": body}
        if self.server.tango and record.get("update_id") == "epoch_summary":
            try:
                content = json.loads(record.get("update_content") or "{}")
            except (TypeError, ValueError):
                content = {}
            record = {**record, "missing_fields": [f for f in TANGO_EPOCH_FIELDS if f not in content]}
        self.server.recorder.add("status_update", record)
        return self._reply(200, "ok")

    def _call_stage(self, endpoint: str, query: dict[str, str]) -> None:
        url = f"{self.server.stage_url}/{endpoint}?{urllib.parse.urlencode(query)}"
        try:
            with urllib.request.urlopen(url, timeout=TANGO_TIMEOUT_S if self.server.tango else 30) as response:
                code, body = response.status, response.read()
        except urllib.error.HTTPError as exc:
            code, body = exc.code, exc.read()
        except TimeoutError as exc:  # TANGO's PM treats a stage slower than its timeout as an error
            self.server.recorder.add("stage_call", {"endpoint": endpoint, "code": 504, "reply": f"timeout: {exc}", **query})
            return self._reply(504, f"stage did not answer within {TANGO_TIMEOUT_S if self.server.tango else 30:g}s")
        except (urllib.error.URLError, OSError) as exc:
            return self._reply(502, f"stage unreachable: {exc}")
        reply = body.decode(errors="replace")[:200]
        if self.server.tango and endpoint != "status":
            reply = reply.replace('"', "").replace("'", "")  # the PM strips quotes from the text reply
        self.server.recorder.add("stage_call", {"endpoint": endpoint, "code": code, "reply": reply, **query})
        self._reply(code, body, "application/json" if endpoint == "status" else "text/plain")
