"""Search strategies by name; the names are settings.STRATEGIES."""
from __future__ import annotations

from autonn_nas.search.settings import STRATEGIES
from autonn_nas.search.strategies.base import SearchStrategy
from autonn_nas.search.strategies.darts import DartsStrategy
from autonn_nas.search.strategies.proxyless import ProxylessStrategy
from autonn_nas.search.strategies.spos import SposStrategy

STRATEGY_CLASSES: dict[str, type[SearchStrategy]] = {
    "proxyless": ProxylessStrategy,
    "darts": DartsStrategy,
    "spos": SposStrategy,
}
assert tuple(STRATEGY_CLASSES) == STRATEGIES, "every strategy named in settings has a class, and no other"


def strategy_class(name: str) -> type[SearchStrategy]:
    try:
        return STRATEGY_CLASSES[name]
    except KeyError:
        raise ValueError(f"unknown search strategy {name!r}; valid: {', '.join(STRATEGY_CLASSES)}") from None


__all__ = ["STRATEGY_CLASSES", "SearchStrategy", "strategy_class"]
