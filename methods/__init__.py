"""Sharpness-aware optimizers (SAM, ASAM, preconditioned and Functional SAM, BAR, IRE) in pure PyTorch.

    from methods import build_optimizer, load_config
    opt = build_optimizer(model, "nbar", lr=3e-4, mu0=0.1, schedule="cosine", total_steps=1000)
    loss = opt.step(lambda: (loss_fn(model(x), y), model_outputs))

Imports no Ray, MLflow or Optuna: training code can use it alone.
"""

from methods._build import build_optimizer
from methods._config_io import load_config
from methods._errors import ConfigError
from methods._hparams import BASE_ONLY, HPARAMS
from methods._optimizer import SharpOptimizer
from methods._pairs import find_lora_pairs
from methods._registry import MethodInfo, Preset, get_method, list_methods, register

__all__ = [
    "BASE_ONLY",
    "HPARAMS",
    "ConfigError",
    "MethodInfo",
    "Preset",
    "SharpOptimizer",
    "build_optimizer",
    "find_lora_pairs",
    "get_method",
    "list_methods",
    "load_config",
    "register",
]
