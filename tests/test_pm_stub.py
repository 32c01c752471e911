"""The project-manager stub is a test and demo tool: loopback only unless told otherwise, and it copies only its
own template projects (issue 18: it copied any folder a `template=../..` named, and listened on every address)."""
from __future__ import annotations

import signal
import subprocess
import sys
import urllib.parse
from pathlib import Path

from autonn_nas.service.local_stack import REPO_ROOT, LocalProcess, free_port, http_get, start_pm_stub, wait_healthy


def _listening_addresses(port: int) -> list[str]:
    """Local addresses (hex, as /proc/net/tcp writes them) of the TCP sockets listening on `port`."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).is_file():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, _, hex_port = fields[1].rpartition(":")
            if int(hex_port, 16) == port and fields[3] == "0A":  # 0A: LISTEN
                found.append(address)
    return found


def test_stub_listens_on_loopback_by_default(tmp_path):
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "project_manager_stub", "serve", "--port", str(port), "--shared",
                                str(tmp_path)], cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    stub = LocalProcess("pm-stub", process, f"http://127.0.0.1:{port}", tmp_path / "stub.log")
    try:
        wait_healthy(f"{stub.url}/healthz", 30, process)
        assert _listening_addresses(port) == ["0100007F"]  # 127.0.0.1, not 0.0.0.0 (00000000)
    finally:
        stub.stop(signal.SIGKILL, grace=5)


def test_stub_copies_only_its_own_templates(tmp_path):
    shared = tmp_path / "shared"
    secret = tmp_path / "elsewhere" / "common" / "a" / "b"
    secret.mkdir(parents=True)
    (secret / "project_info.yaml").write_text("task_type : detection\n")
    port = free_port()
    stub = start_pm_stub(shared, "http://127.0.0.1:1", port, tmp_path / "stub.log")
    try:
        for template in ("../../../elsewhere/common/a/b", "../..", str(secret)):
            query = urllib.parse.urlencode({"user_id": "u", "project_id": "p", "template": template})
            code, body = http_get(f"{stub.url}/create_project?{query}")
            assert code == 400 and "is not a project folder" in body, (template, body)
        assert not (shared / "common").exists()
        code, _ = http_get(f"{stub.url}/create_project?user_id=u&project_id=p")  # its own demo project still works
        assert code == 200 and (shared / "common" / "u" / "p" / "project_info.yaml").is_file()
    finally:
        stub.stop(signal.SIGKILL, grace=5)
