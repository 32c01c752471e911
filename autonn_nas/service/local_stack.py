"""Start the stage server and the PM stub as real local processes (for the demo, tests and benchmarks).

SERVE_COMMAND is the Dockerfile's CMD; tests check that they are the same, so what the tests start is
what the container runs.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
SERVE_COMMAND = ["python", "-m", "autonn_nas", "serve"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_get(url: str, timeout: float = 10.0) -> tuple[int, str]:
    """(status code, body) of a GET; HTTP errors are answers too. Raises OSError when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_healthy(url: str, timeout: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with code {process.returncode} before answering")
        try:
            if http_get(url, timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout:g}s")


@dataclass
class LocalProcess:
    name: str
    process: subprocess.Popen
    url: str
    log_path: Path
    _closed: bool = field(default=False, repr=False)

    def stop(self, sig: int = signal.SIGTERM, grace: float = 10.0) -> None:
        """End this process and its group (each runs in its own session); SIGKILL after `grace` seconds."""
        if self._closed:
            return
        for current in (sig, signal.SIGKILL):
            try:
                os.killpg(self.process.pid, current)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                continue
        self._closed = True


def _launch(name: str, argv: list[str], env: dict[str, str], log_path: Path, url: str, timeout: float) -> LocalProcess:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(argv, env=env, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    local = LocalProcess(name, process, url, log_path)
    try:
        wait_healthy(f"{url}/healthz", timeout, process)
    except BaseException:
        local.stop(signal.SIGKILL, grace=5)
        raise
    return local


def start_stage(shared_dir: Path, pm_url: str, port: int, log_path: Path, extra_env: dict[str, str] | None = None,
                timeout: float = 60.0) -> LocalProcess:
    """`python -m autonn_nas serve` on 127.0.0.1:port, configured through the environment as in a container."""
    env = dict(os.environ, HOST="127.0.0.1", PORT=str(port), SHARED_DIR=str(shared_dir), PROJECT_MANAGER_URL=pm_url)
    env.update(extra_env or {})
    argv = [sys.executable, *SERVE_COMMAND[1:]]
    return _launch("stage", argv, env, log_path, f"http://127.0.0.1:{port}", timeout)


def start_pm_stub(shared_dir: Path, stage_url: str, port: int, log_path: Path, record: Path | None = None,
                  timeout: float = 30.0, tango: bool = False) -> LocalProcess:
    argv = [sys.executable, "-m", "project_manager_stub", "serve", "--host", "127.0.0.1", "--port", str(port),
            "--shared", str(shared_dir), "--stage-url", stage_url] + (["--tango"] if tango else [])
    if record:
        argv += ["--record", str(record)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
    return _launch("pm-stub", argv, env, log_path, f"http://127.0.0.1:{port}", timeout)
