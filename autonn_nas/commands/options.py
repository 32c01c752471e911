"""Options several commands share, defined once: the image size (--img / --img-size) and the run folder
(--project/--name/--exist-ok, or --out). Not a command itself (cli.py's table lists the commands)."""
from __future__ import annotations

import argparse
from pathlib import Path

from autonn_nas.utils.img_size import img_size_problem
from autonn_nas.utils.run_folder import latest_run_folder, next_run_folder

DEFAULT_NAME = "exp"


def image_size(text: str) -> int:
    """argparse type of --img: a multiple of the largest stride; the error names the nearest valid sizes."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of pixels, got {text!r}") from None
    problem = img_size_problem(value)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return value


def add_img_size(parser: argparse.ArgumentParser, help_text: str, dest: str = "img") -> None:
    parser.add_argument("--img", "--img-size", dest=dest, type=image_size, default=None, metavar="PIXELS", help=help_text)


def add_run_folder(parser: argparse.ArgumentParser, kind: str, resumable: bool = False) -> None:
    """--project/--name/--exist-ok (runs/<kind>/exp, exp2, ...) and --out DIR (exactly that folder)."""
    group = parser.add_argument_group("run folder")
    group.add_argument("--project", default=None, help=f"folder of the runs (default runs/{kind})")
    group.add_argument("--name", default=None, help=f"run name under --project (default {DEFAULT_NAME}; taken: {DEFAULT_NAME}2, {DEFAULT_NAME}3, ...)")
    group.add_argument("--exist-ok", action="store_true", help="reuse --project/--name instead of numbering a new one "
                       "(the previous run's outputs are removed first)")
    resume_note = "; with --resume, the run to continue" if resumable else ""
    group.add_argument("--out", default=None, metavar="DIR", help="this exact folder instead of --project/--name "
                       f"(a previous run's outputs there are removed first{resume_note})")
    parser.set_defaults(_run_kind=kind)


def run_folder(args: argparse.Namespace, resume: bool = False) -> Path:
    """The folder a command writes to, from the options add_run_folder added. With `resume`, the run to continue:
    --out, or --project/--name, or else the run under --project whose last.pt is the newest."""
    project = Path(args.project or Path("runs") / args._run_kind)
    if args.out is not None:
        if args.project is not None or args.name is not None:
            raise ValueError("give either --out DIR or --project/--name, not both")
        return Path(args.out)
    if resume:
        if args.name is not None:
            return project / args.name
        latest = latest_run_folder(project)
        if latest is None:
            raise ValueError(f"nothing to resume under {project}: no run folder there holds a last.pt; "
                             "name the run with --out DIR (or --project/--name)")
        return latest
    return next_run_folder(project, args.name or DEFAULT_NAME, exist_ok=args.exist_ok)
