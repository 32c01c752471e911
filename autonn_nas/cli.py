"""The one command-line entry point: `autonn-nas <command> ...`.

Each command lives in `autonn_nas/commands/<name>.py` and provides `add_arguments(parser)` and
`run(args) -> int`. The table below is the whole list; a command is added by adding a row. Only the module of
the command that runs is imported (torch with it), so `--help` and `--version` answer at once.

Errors a user can fix (ValueError and its kinds: DatasetError, ConfigError, ArchitectureError, ...; a missing
file; a bad option) end in one line, `autonn-nas CMD: error: ...`, and exit status 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import NoReturn, Sequence

from autonn_nas import __version__
from autonn_nas.utils.log import configure_logging

PROG = "autonn-nas"

# command name -> (module under autonn_nas.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "search": ("search", "neck architecture search: supernet, strategy, derived model YAML, weights and report"),
    "summary": ("summary", "per-layer table, parameters and GFLOPs of a model YAML"),
    "latency-table": ("latency_table", "measure every searchable block's candidates on this device: a target's latency table for --latency-table"),
    "derive": ("derive", "write the concrete model YAML of an architecture JSON"),
    "serve": ("serve", "run the pipeline stage's HTTP server (TANGO neck_nas container)"),
    "demo": ("demo", "run the whole stage on the embedded demo project with a PM stub, on loopback"),
    "train": ("train", "train a detector on a YOLO dataset (results.csv, last.pt/best.pt)"),
    "val": ("val", "P, R, mAP50 and mAP50-95 of a checkpoint on a dataset's val split, with its PR curve and confusion matrix"),
    "export": ("export", "ONNX or TorchScript file of a checkpoint (BN folded, decoded output), verified against PyTorch"),
    "predict": ("predict", "detections on images with a checkpoint or export: YOLO txt, COCO JSON, drawn pictures (--save)"),
}


class _Parser(argparse.ArgumentParser):
    """argparse's parser whose usage errors are one line with the way to more help, as every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _command_in(argv: Sequence[str]) -> str | None:
    """The command word of a command line (the top level takes no option with a value)."""
    return next((word for word in argv if not word.startswith("-")), None)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser with every command listed; the options of `command` only (None: of all commands)."""
    parser = _Parser(prog=PROG, description="Neck architecture search for YOLOv4-P5 detectors.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name, (module_name, help_text) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        if command is None or command == name:
            module = importlib.import_module(f"autonn_nas.commands.{module_name}")
            module.add_arguments(command_parser)
            command_parser.set_defaults(_run=module.run)
    return parser


def error_line(command: str, error: BaseException) -> str:
    """The one line a user error ends in."""
    message = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    if isinstance(error, FileNotFoundError) and error.filename and error.strerror:
        message = f"{error.strerror}: {error.filename}"
    return f"{PROG} {command}: error: {message}"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser(_command_in(argv)).parse_args(argv)
    except SystemExit as done:  # --help, --version (0) or a usage error (2, said in one line): a status, as for a run
        return int(done.code or 0)
    configure_logging()
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError) as error:
        # User errors (bad config, dataset, settings) carry a message meant for people: no traceback.
        print(error_line(args.command, error), file=sys.stderr)
        return 2
