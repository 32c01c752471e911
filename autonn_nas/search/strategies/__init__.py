"""Search strategies by name: importing this package imports every strategy module, and each registers its
class (`@register_strategy`); see docs/strategies.md to add one."""
from __future__ import annotations

# imported for their registration
from autonn_nas.search.strategies import darts, proxyless, spos  # noqa: F401
from autonn_nas.search.strategies.base import SearchStrategy
from autonn_nas.search.strategies.registry import STRATEGY_CLASSES, register_strategy, strategy_class

__all__ = ["STRATEGY_CLASSES", "SearchStrategy", "register_strategy", "strategy_class"]
