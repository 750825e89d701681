"""Every hyperparameter a method can take: its default, its check, and which part owns it.

One table instead of checks spread over the optimizer: `build_optimizer`, YAML specs and exported
configs all use these names, so the same validation serves all three.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from methods._base_optimizers import check_base
from methods._errors import ConfigError
from methods._parts import names as part_names

SCHEDULES = ("constant", "linear", "cosine")


@dataclass(frozen=True)
class HParam:
    """One hyperparameter: default value, a coercing validator and a one-line meaning."""

    default: Any
    check: Callable[[str, Any], Any]
    doc: str


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or value is None:
        raise ConfigError(f"{name} must be a number, got {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(out):
        raise ConfigError(f"{name} must be finite, got {value!r}")
    return out


def _float(low: float | None = None, high: float | None = None, *, low_open: bool = False,
           high_open: bool = False, optional: bool = False) -> Callable[[str, Any], Any]:
    def check(name: str, value: Any) -> float | None:
        if value is None and optional:
            return None
        out = _number(name, value)
        too_low = low is not None and (out <= low if low_open else out < low)
        too_high = high is not None and (out >= high if high_open else out > high)
        if too_low or too_high:
            lo = "-inf" if low is None else f"{low:g}"
            hi = "inf" if high is None else f"{high:g}"
            bounds = f"{'(' if low_open else '['}{lo}, {hi}{')' if high_open else ']'}"
            raise ConfigError(f"{name} must be in {bounds}, got {value!r}")
        return out
    return check


def _int(low: int, *, optional: bool = False) -> Callable[[str, Any], Any]:
    def check(name: str, value: Any) -> int | None:
        if value is None and optional:
            return None
        out = _number(name, value)
        if out != int(out) or out < low:
            raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
        return int(out)
    return check


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    return value


def _choice(*allowed: str) -> Callable[[str, Any], str]:
    def check(name: str, value: Any) -> str:
        if value not in allowed:
            raise ConfigError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
        return value
    return check


def _optional(check: Callable[[str, Any], Any]) -> Callable[[str, Any], Any]:
    """`check`, or None left unset (a knob that only one setting of another hyperparameter reads)."""
    def optional(name: str, value: Any) -> Any:
        return None if value is None else check(name, value)
    return optional


def _part(kind: str) -> Callable[[str, Any], str]:
    """A choice among the registered parts of `kind` (`_parts`), read when checked: a new part needs no edit here."""
    def check(name: str, value: Any) -> str:
        return _choice(*part_names(kind))(name, value)
    return check


def _betas(name: str, value: Any) -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ConfigError(f"{name} must be a pair [beta1, beta2], got {value!r}")
    unit = _float(0.0, 1.0, high_open=True)
    return (unit(f"{name}[0]", value[0]), unit(f"{name}[1]", value[1]))


HPARAMS: Mapping[str, HParam] = {
    # base update
    "base": HParam("sgd", check_base, "base optimizer that takes the final gradient: sgd, adamw, any "
                   "torch.optim optimizer or pytorch-optimizer's (lower case: radam, lion, adan, ...)"),
    "lr": HParam(None, _float(0.0, low_open=True), "learning rate"),
    "momentum": HParam(0.9, _float(0.0, 1.0, high_open=True), "SGD momentum"),
    "nesterov": HParam(False, _bool, "SGD Nesterov momentum"),
    "betas": HParam((0.9, 0.999), _betas, "AdamW betas"),
    "eps": HParam(1e-8, _float(0.0, low_open=True), "AdamW epsilon"),
    "weight_decay": HParam(0.0, _float(0.0), "decoupled for AdamW, L2 for SGD; never perturbed"),
    "grad_clip": HParam(None, _float(0.0, low_open=True, optional=True),
                        "clip the final gradient's global norm"),
    # perturbation
    "rho": HParam(0.05, _float(0.0), "perturbation radius"),
    "rho_schedule": HParam("constant", _choice(*SCHEDULES), "schedule of rho over total_steps"),
    "asam_eta": HParam(0.01, _float(0.0), "ASAM: T = |w| + asam_eta (official default 0.01)"),
    "asam_scope": HParam("weights", _choice("weights", "all"),
                         "ASAM scales tensors named *weight* (>= 2 dims if unnamed; official) or all (davda54)"),
    "perturb_sync": HParam("global", _choice("global", "local"),
                           "data parallel: perturb with the gradient averaged over workers (global: SAM on the "
                           "global batch) or with each worker's own shard's (local: m-sharpness, one all-reduce "
                           "fewer); only the perturbed gradient is averaged"),
    "preconditioner": HParam("none", _part("preconditioner"),
                             "preconditioner of the perturbation"),
    "precond_beta": HParam(0.999, _float(0.0, 1.0, high_open=True), "EMA factor of ema_sq / fisher"),
    "precond_eps": HParam(1e-8, _float(0.0, low_open=True), "P = diag(sqrt(v) + precond_eps)"),
    "precond_normalize": HParam("precond", _choice("precond", "grad"),
                                "normalise eps by ||P^-1 g|| (precond) or by ||g|| (grad)"),
    # balancer
    "mu0": HParam(0.5, _float(0.0), "balancer strength alpha_0 at step 0 (the paper's grids: 0.2-2)"),
    "schedule": HParam("constant", _choice(*SCHEDULES), "schedule of alpha_t = mu0 s(t/T) over total_steps"),
    "bar_rule": HParam("paper", _choice("paper", "drift"),
                       "paper: Algorithms 2/3 of Li et al. (sign rule, factor 1 +- alpha_t lr_t); "
                       "drift: ours, a magnitude matched to SAM's drift (takes bar_norm, bar_scale)"),
    "bar_norm": HParam(None, _optional(_choice("global", "pair")),
                       "bar_rule drift only: ||g|| global over all parameters (SAM's; unset) or per pair"),
    "bar_scale": HParam(None, _optional(_choice("adam", "none")),
                        "bar_rule drift only, AdamW base: scale c by ||g/(sqrt(v)+eps)|| / ||g|| per pair "
                        "(adam; unset) or not (none)"),
    "total_steps": HParam(None, _int(1, optional=True), "horizon T of the schedules"),
    # IRE
    "kappa": HParam(2.0, _float(0.0), "boost of the flat directions"),
    "gamma": HParam(0.8, _float(0.0, 1.0, low_open=True), "fraction of coordinates boosted"),
    "ire_interval": HParam(10, _int(1), "steps between curvature estimates (K)"),
    "curvature": HParam("fisher", _choice("fisher", "grad_sq", "adam"), "diagonal curvature estimate"),
    "warmup": HParam(None, _int(0, optional=True),
                     "steps without IRE; default a third of total_steps, as the official runs (0 without total_steps)"),
    "kappa_decay": HParam(False, _bool, "kappa_t = kappa * lr_t / lr_peak, lr_peak the configured lr"),
    "ire_start": HParam("third", _choice("third", "lr_warmup"),
                        "when warmup is unset, IRE starts after a third of total_steps (the official vision scripts) "
                        "or right after the lr warm-up (lr_warmup: the official LM scripts)"),
    "ire_ties": HParam("exact", _choice("exact", "official"),
                       "mask: exactly round(gamma p), ties by position, or the official update_mask (every h <= the "
                       "int(gamma p)-th smallest for gamma <= 0.5, <= the int((1-gamma) p)-th largest above)"),
}

BASE_COMMON = frozenset({"base", "lr", "weight_decay", "grad_clip"})
BASE_ONLY = {"sgd": frozenset({"momentum", "nesterov"}), "adamw": frozenset({"betas", "eps"})}
BASE_NAMES = BASE_COMMON | BASE_ONLY["sgd"] | BASE_ONLY["adamw"]
PERTURB_NAMES = frozenset({"rho", "rho_schedule", "perturb_sync", "preconditioner", "precond_beta", "precond_eps",
                           "precond_normalize", "total_steps"})
ASAM_NAMES = frozenset({"asam_eta", "asam_scope"})
BALANCER_NAMES = frozenset({"mu0", "schedule", "total_steps", "bar_rule", "bar_norm", "bar_scale"})
IRE_NAMES = frozenset({"kappa", "gamma", "ire_interval", "curvature", "warmup", "ire_start", "kappa_decay",
                       "ire_ties", "total_steps"})
DEFAULT_LR = {"sgd": 0.01, "adamw": 1e-3}


def schedule_factor(kind: str, step: int, total_steps: int | None) -> float:
    """s(t/T): 1 (constant), 1 - t/T (linear), (1 + cos(pi t/T)) / 2 (cosine); t/T clipped to 1."""
    if kind == "constant":
        return 1.0
    frac = min(step / total_steps, 1.0) if total_steps else 0.0
    if kind == "linear":
        return 1.0 - frac
    return 0.5 * (1.0 + math.cos(math.pi * frac))
