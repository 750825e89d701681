"""Sharpness-aware optimizers (SAM, ASAM, preconditioned and Functional SAM, BAR, IRE) in pure PyTorch,
plus methods registered with `register_method` (pytorch-optimizer's GSAM, WSAM, ... with the extra `comparators`).

    from methods import build_optimizer, load_config
    opt = build_optimizer(model, "nbar", lr=3e-4, mu0=0.1, schedule="cosine", total_steps=1000)
    loss = opt.step(lambda: (loss_fn(model(x), y), model_outputs))

Imports no Ray, MLflow or Optuna: training code can use it alone.
"""

from methods import catalogue  # noqa: F401  (the built-in methods register on import)
from methods._adapter import ClosureAdapter
from methods._base_optimizers import comparators_installed
from methods._build import build_optimizer
from methods._config_io import load_config
from methods._errors import ConfigError
from methods._hparams import BASE_ONLY, HPARAMS, HParam
from methods._optimizer import SharpOptimizer
from methods._pairs import find_lora_pairs
from methods._plugins import hparam, load_entry_points, register_method
from methods._registry import (
    BuildContext,
    MethodInfo,
    Preset,
    get_method,
    list_methods,
    register,
    unavailable_reason,
)

load_entry_points()  # plug-ins installed as packages (entry point group sharptune.methods)

__all__ = [
    "BASE_ONLY",
    "HPARAMS",
    "BuildContext",
    "ClosureAdapter",
    "ConfigError",
    "HParam",
    "MethodInfo",
    "Preset",
    "SharpOptimizer",
    "build_optimizer",
    "comparators_installed",
    "find_lora_pairs",
    "get_method",
    "hparam",
    "list_methods",
    "load_config",
    "register",
    "register_method",
    "unavailable_reason",
]
