"""The one way the stage and its jobs read a YAML file someone else wrote (project_info.yaml, neck_nas.yaml,
basemodel.yaml, a model config, dataset.yaml, a hyperparameter file): bounded before it is used.

- at most MAX_BYTES are read (a larger file is refused, not truncated);
- aliases (`*name`) are refused: PyYAML expands each alias into a shared object, so a few hundred bytes of
  nested aliases ("billion laughs") become gigabytes once the value is copied, printed or saved as JSON;
- nesting deeper than MAX_DEPTH is refused (PyYAML composes recursively: a file of `[[[[...` would end in a
  RecursionError);
- errors name the file, the line and the problem, never the file's text: a file may be a symlink to
  something that is not ours to show.

It lives in models/ (and imports nothing of the package) because the model code is copied as a standalone package
into every hand-off (export/standalone.py): the copied parser must read its YAML the same way, on its own.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 1 << 20  # 1 MiB: the largest real input (a dataset.yaml naming a thousand classes) is a few KB
MAX_DEPTH = 32  # the deepest real input (a model config's rows of args) nests 4 levels


class YamlInputError(ValueError):
    """A YAML input that is too large, uses aliases, nests too deep or does not parse; names file and line."""


class YamlBoundsError(YamlInputError):
    """Beyond the bounds (size, aliases, depth), as opposed to a syntax error: never to be read some other way."""


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases and deep nesting while composing, before any value is constructed."""

    def __init__(self, stream: str, source: str):
        super().__init__(stream)
        self.source = source
        self.depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise YamlBoundsError(f"{self.source}, line {mark.line + 1}: YAML aliases (*name) are not accepted here; "
                                 "write the value out in full")
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise YamlBoundsError(f"{self.source}, line {mark.line + 1}: nested more than {MAX_DEPTH} levels deep")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def shown(value: Any, limit: int = 40) -> str:
    """A value as an error message quotes it: its repr, cut at `limit` characters (an input may be huge)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def read_bounded_text(path: Path, max_bytes: int = MAX_BYTES) -> str:
    """The text of a UTF-8 file of at most `max_bytes`; YamlInputError (naming the file, never its text) otherwise.
    OSError (missing, unreadable) is the caller's to word."""
    with open(path, "rb") as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise YamlBoundsError(f"{path}: larger than {max_bytes} bytes; this is not a settings file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlInputError(f"{path}: not UTF-8 text (undecodable byte at offset {exc.start})") from None


def load_yaml_text(text: str, source: str) -> Any:
    """Parse YAML text with the bounds above; YamlInputError naming `source` and the line."""
    loader = _BoundedLoader(text, source)
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        # problem and context are PyYAML's own words ("could not find expected ':'"); its str() would add a
        # snippet of the file, which is left out
        words = "; ".join(part for part in (exc.context, exc.problem) if part)
        raise YamlInputError(f"{source}{where}: not valid YAML: {words or type(exc).__name__}") from None
    except yaml.YAMLError as exc:
        raise YamlInputError(f"{source}: not valid YAML ({type(exc).__name__})") from None
    finally:
        loader.dispose()


def load_yaml_file(path: str | Path, max_bytes: int = MAX_BYTES) -> Any:
    """read_bounded_text + load_yaml_text."""
    path = Path(path)
    return load_yaml_text(read_bounded_text(path, max_bytes), str(path))
