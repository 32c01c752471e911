"""Model core: building blocks, the YAML parser, the neck search space and the choice block."""
from .choice import MBottleneckCSP2, active_architecture, clear_mixture, searchable_blocks, set_architecture
from .search_space import BASE_CANDIDATE, CANDIDATES, ArchitectureError
from .yolo import ConfigError, Model, build_model, load_cfg

__all__ = [
    "BASE_CANDIDATE",
    "CANDIDATES",
    "ArchitectureError",
    "ConfigError",
    "MBottleneckCSP2",
    "Model",
    "active_architecture",
    "build_model",
    "clear_mixture",
    "load_cfg",
    "searchable_blocks",
    "set_architecture",
]
