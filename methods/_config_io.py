"""Read an exported winning config so `build_optimizer(model, **load_config(path))` just works."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from methods._errors import ConfigError


def load_config(path: str | Path) -> dict[str, Any]:
    """`{"method": ..., **hyperparameters}` from a YAML or JSON file.

    Accepts the exported layout (`method`, `hyperparameters`, `provenance`) and a flat mapping;
    provenance is dropped because the optimizer does not take it.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: "
                          f"{str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict) or "method" not in data:
        raise ConfigError(f"{path}: expected a mapping with a 'method' key")
    hyper = data.get("hyperparameters", {k: v for k, v in data.items() if k not in {"method", "provenance"}})
    if not isinstance(hyper, dict):
        raise ConfigError(f"{path}: 'hyperparameters' must be a mapping")
    return {"method": data["method"], **hyper}
