"""Reproducible installs: constraints.txt pins every dependency the project declares, within what pyproject.toml
allows, to the versions this suite runs with; `make install` and the Dockerfile install with it."""
from __future__ import annotations

from importlib import metadata
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]


def _pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, equals, version = line.partition("==")
            assert equals and version, f"constraints.txt: {line!r} is not an exact pin (name==version)"
            pins[canonicalize_name(name)] = version
    return pins


def _declared() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [Requirement(text) for text in project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]]


def test_every_declared_dependency_is_pinned_within_its_range():
    pins = _pins()
    assert "autonn-nas" not in pins  # the project itself is installed from the source
    assert not [name for name in pins if name.startswith(("nvidia-", "cuda-")) or name == "triton"]  # torch pins its CUDA runtime
    for requirement in _declared():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is declared in pyproject.toml but not pinned in constraints.txt"
        assert requirement.specifier.contains(Version(pins[name]), prereleases=True), f"{name}=={pins[name]} is outside {requirement}"


def test_the_suite_runs_with_the_pinned_versions():
    mismatched = []
    for name, version in _pins().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue  # e.g. a test tool absent where only the package was installed
        if Version(installed).public != Version(version).public:  # torch's +cpu / +cu128 labels aside
            mismatched.append(f"{name}: installed {installed}, pinned {version}")
    assert not mismatched, "regenerate constraints.txt (see its header) or reinstall with -c constraints.txt:\n" + "\n".join(mismatched)


def test_make_install_and_the_image_install_with_the_constraints():
    makefile = (REPO / "Makefile").read_text()
    assert "pip install --quiet -c constraints.txt -e '.[test]'" in makefile and ".installed: pyproject.toml constraints.txt" in makefile
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "COPY pyproject.toml constraints.txt ./" in dockerfile and "pip install -c constraints.txt -r /tmp/requirements.txt" in dockerfile
