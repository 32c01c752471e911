"""What a resumed run does with settings it cannot change: it keeps the saved ones, and says which it ignored."""
from __future__ import annotations

import dataclasses
from typing import Any, Iterable


def ignored_on_resume(requested: Any, saved: Any, changeable: Iterable[str]) -> list[str]:
    """The settings (dataclass instances of one type) that were asked for (differ from the type's defaults) but
    that a resume keeps as saved, as 'name=asked (the run has saved)'."""
    defaults, keep = type(requested)(), set(changeable)
    return [f"{f.name}={getattr(requested, f.name)!r} (the run has {getattr(saved, f.name)!r})"
            for f in dataclasses.fields(requested)
            if f.name not in keep and getattr(requested, f.name) != getattr(defaults, f.name)
            and getattr(requested, f.name) != getattr(saved, f.name)]
