"""The README stays a newcomer's page (under 150 lines, the rest in docs/), its links and the docs' links lead to
files (and headings) inside the repository, and it shows the commands the Makefile and CI really run."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
PAGES = [README, *sorted((REPO / "docs").glob("*.md"))]
README_MAX_LINES = 150
IMAGE_MAX_BYTES = 300_000

_FENCE = re.compile(r"^```.*?^```[ \t]*$", re.S | re.M)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def _prose(text: str) -> str:
    """The text without code blocks and inline code (a `[x](y)` inside code is not a link)."""
    return _INLINE_CODE.sub("", _FENCE.sub("", text))


def _code_blocks(text: str) -> list[str]:
    return [block for block in _FENCE.findall(text)]


def links(page: Path) -> list[str]:
    return _LINK.findall(_prose(page.read_text()))


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped (but - and _), spaces to -, repeats numbered."""
    seen: dict[str, int] = {}
    result = set()
    for heading in _HEADING.findall(_FENCE.sub("", page.read_text())):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        result.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
        seen[slug] = seen.get(slug, 0) + 1
    return result


def test_readme_is_under_150_lines():
    lines = README.read_text().splitlines()
    assert len(lines) < README_MAX_LINES, f"README.md has {len(lines)} lines; move detail to docs/"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_lead_to_files_inside_the_repository(page: Path):
    problems = []
    for target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        file = (page.parent / path_part).resolve() if path_part else page
        if not file.is_relative_to(REPO):
            problems.append(f"{target}: leads outside the repository")
        elif not file.exists():
            problems.append(f"{target}: {file.relative_to(REPO)} does not exist")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            problems.append(f"{target}: no heading #{anchor} in {file.relative_to(REPO)}")
    assert not problems, f"{page.relative_to(REPO)}: " + "; ".join(problems)


def test_the_link_checker_sees_links():
    # a checker that finds no link would pass everything: the README links its docs and its picture
    assert {"docs/cli.md", "docs/stage.md", "docs/search.md", "docs/images/pareto.png"} <= set(links(README))


def test_pictures_are_small():
    pictures = sorted((REPO / "docs" / "images").glob("*.png"))
    assert pictures
    for picture in pictures:
        assert picture.stat().st_size < IMAGE_MAX_BYTES, f"{picture.relative_to(REPO)} is over {IMAGE_MAX_BYTES} bytes"


def _ci_command() -> str:
    lines = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    commands = [line for line in lines if line and not line.startswith("#") and not line.startswith(("set ", "cd "))]
    assert commands, ".ci/run runs no command"
    return commands[-1]


def test_readme_shows_the_test_command_ci_runs():
    command = _ci_command()
    shown = [line.split("#")[0].strip() for block in _code_blocks(README.read_text()) for line in block.splitlines()]
    assert command in shown, f".ci/run runs {command!r}, which the README's code blocks do not show"


def test_make_commands_in_the_readme_are_makefile_targets():
    targets = set(re.findall(r"^([\w.-]+):", (REPO / "Makefile").read_text(), re.M))
    shown = [line.split("#")[0].strip() for block in _code_blocks(README.read_text()) for line in block.splitlines()]
    make_lines = [shlex.split(line) for line in shown if line.startswith("make ")]
    assert make_lines, "the README shows no make command"
    for words in make_lines:
        for word in words[1:]:
            if "=" not in word:
                assert word in targets, f"README shows `make {word}`, which the Makefile has no target for"
