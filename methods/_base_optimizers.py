"""Base optimizers by name: `sgd` and `adamw`, any `torch.optim` optimizer, and pytorch-optimizer's.

The base takes the final gradient of every method. SGD and AdamW are built in with their own knobs;
any other base is built from its class with the hyperparameters its constructor takes (`lr`,
`weight_decay` and, where the signature has them, `momentum`, `nesterov`, `betas` as a pair, `eps`)
and the class defaults for everything else. Names are lower case: torch's own classes first
(`radam`, `nadam`, `rmsprop`, ...), then pytorch-optimizer's (`lion`, `adan`, `lamb`, ...), which is
imported only when one of its names is asked for (the import takes seconds).
"""

from __future__ import annotations

import importlib.util
import inspect
from collections.abc import Mapping
from functools import cache
from typing import Any

import torch

from methods._errors import ConfigError

BUILTIN = ("sgd", "adamw")
# Not a base: needs a closure or second-order terms in step(), a model instead of parameters, or is a
# sharpness-aware method itself.
NOT_A_BASE = frozenset({"lbfgs", "sparseadam", "adahessian", "sophiah", "lomo", "adalomo", "alig", "bsam",
                        "distributedmuon", "muon", "galore"})
EXTRA = "pytorch-optimizer"


def _torch_bases() -> dict[str, type[torch.optim.Optimizer]]:
    return {name.lower(): cls for name, cls in vars(torch.optim).items()
            if inspect.isclass(cls) and issubclass(cls, torch.optim.Optimizer) and cls is not torch.optim.Optimizer
            and name.lower() not in NOT_A_BASE}


def comparators_installed() -> bool:
    """Whether the optional extra `comparators` (pytorch-optimizer) is installed; imports nothing."""
    return importlib.util.find_spec("pytorch_optimizer") is not None


@cache
def _library_bases() -> dict[str, type[torch.optim.Optimizer]]:
    if not comparators_installed():
        return {}
    import pytorch_optimizer  # optional extra, seconds to import: only when a non-torch base is named

    return {name: pytorch_optimizer.load_optimizer(name) for name in pytorch_optimizer.get_supported_optimizers()
            if name not in NOT_A_BASE}


def base_class(name: str) -> type[torch.optim.Optimizer]:
    """The optimizer class called `name`, or a ConfigError that says where names come from."""
    found = _torch_bases().get(name) if isinstance(name, str) else None
    if found is None and isinstance(name, str):
        found = _library_bases().get(name)
    if found is None:
        hint = "" if comparators_installed() else " (more with the extra: pip install -e '.[comparators]')"
        raise ConfigError(f"base must be sgd, adamw, a torch.optim optimizer (lower case, e.g. radam) or a "
                          f"pytorch-optimizer optimizer (e.g. lion, adan){hint}; got {name!r}")
    return found


def check_base(field: str, value: Any) -> str:
    """The `base` hyperparameter's check: a known base optimizer name."""
    if value in BUILTIN:
        return value
    base_class(value)
    return value


def _signature(name: str) -> Mapping[str, inspect.Parameter]:
    return inspect.signature(base_class(name).__init__).parameters


def base_takes(name: str) -> frozenset[str]:
    """Our base hyperparameter names that base `name` takes (the others would be dropped silently)."""
    if name == "sgd":
        return frozenset({"momentum", "nesterov"})
    if name == "adamw":
        return frozenset({"betas", "eps"})
    sig = _signature(name)
    out = {k for k in ("momentum", "nesterov", "eps") if k in sig}
    betas = sig.get("betas")
    if betas is not None and isinstance(betas.default, tuple) and len(betas.default) == 2:
        out.add("betas")
    return frozenset(out)


def default_lr(name: str) -> float:
    """The class's own default learning rate (1e-3 where it has none)."""
    lr = _signature(name).get("lr")
    default = getattr(lr, "default", None)
    return float(default) if isinstance(default, (int, float)) and not isinstance(default, bool) else 1e-3


def base_kwargs(name: str, hp: Mapping[str, Any]) -> dict[str, Any]:
    """Constructor arguments of base `name` from resolved hyperparameters."""
    if name == "sgd":
        if hp["nesterov"] and hp["momentum"] == 0:
            raise ConfigError("nesterov needs momentum > 0")
        keys = ("lr", "momentum", "nesterov", "weight_decay")
    elif name == "adamw":
        keys = ("lr", "betas", "eps", "weight_decay")
    else:
        has_decay = "weight_decay" in _signature(name)
        if hp.get("weight_decay") and not has_decay:
            raise ConfigError(f"base {name!r} takes no weight_decay; drop weight_decay or pick another base")
        keys = ("lr", *sorted(base_takes(name)), *(("weight_decay",) if has_decay else ()))
    return {k: tuple(hp[k]) if k == "betas" else hp[k] for k in keys}


def build_base(params: Any, hp: Mapping[str, Any]) -> torch.optim.Optimizer:
    """The base optimizer `hp["base"]` over `params` (a list of tensors or parameter groups)."""
    cls = torch.optim.SGD if hp["base"] == "sgd" else torch.optim.AdamW if hp["base"] == "adamw" \
        else base_class(hp["base"])
    try:
        return cls(params, **base_kwargs(hp["base"], hp))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"base {hp['base']!r} cannot be built: {exc}") from None
