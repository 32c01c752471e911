"""The strategies by name, filled by `@register_strategy` as each strategy module is imported
(strategies/__init__.py imports them all).

settings.STRATEGIES stays a plain tuple of the names because the CLI (`autonn-nas --help`) and the settings
validation read it without importing torch; registering a name that tuple lacks is refused here, and a
test checks that both list the same names in the same order.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from autonn_nas.search.settings import STRATEGIES

if TYPE_CHECKING:
    from autonn_nas.search.strategies.base import SearchStrategy

S = TypeVar("S", bound="type[SearchStrategy]")

STRATEGY_CLASSES: dict[str, type[SearchStrategy]] = {}


def register_strategy(cls: S) -> S:
    """Class decorator: make the strategy buildable by its `name` (`strategy_class(name)`)."""
    name = cls.name
    if name not in STRATEGIES:
        raise ValueError(f"strategy {cls.__qualname__} is named {name!r}, which settings.STRATEGIES ({', '.join(STRATEGIES)}) "
                         "lacks: add the name there (the CLI and the settings validation read that tuple)")
    if name in STRATEGY_CLASSES and STRATEGY_CLASSES[name] is not cls:
        raise ValueError(f"strategy name {name!r} is taken by {STRATEGY_CLASSES[name].__qualname__}")
    STRATEGY_CLASSES[name] = cls
    # kept in the settings' order whatever the import order: messages list the names as the CLI does
    ordered = sorted(STRATEGY_CLASSES.items(), key=lambda item: STRATEGIES.index(item[0]))
    STRATEGY_CLASSES.clear()
    STRATEGY_CLASSES.update(ordered)
    return cls


def strategy_class(name: str) -> type[SearchStrategy]:
    try:
        return STRATEGY_CLASSES[name]
    except KeyError:
        raise ValueError(f"unknown search strategy {name!r}; valid: {', '.join(STRATEGY_CLASSES)}") from None
