"""`sharp_config=` as every integration takes it: an exported file, or the dict `load_config` returns."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from methods._config_io import load_config
from methods._errors import ConfigError
from methods._registry import get_method


def sharp_config(config: str | Path | Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(method, hyperparameters), checked now so a bad config fails before any training starts."""
    if isinstance(config, str | Path):
        data = load_config(config)
    elif isinstance(config, Mapping):
        data = dict(config)
    else:
        raise ConfigError(f"sharp_config must be a path to an exported config or a mapping, "
                          f"got {type(config).__name__}")
    if "method" not in data:
        raise ConfigError("sharp_config: expected a 'method' key (as `tuner export` writes it)")
    method = data.pop("method")
    get_method(method).resolve(data)  # unknown names and bad values fail here, with the field named
    return method, data
