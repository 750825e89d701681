"""Every method by name: a preset of the five parts, its citation, cost and default search space.

A method is data, not a class: the optimizer is one composable step, and a preset only picks the
parts. Adding a method means registering one more `MethodInfo`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from methods._base_optimizers import BUILTIN, base_takes, default_lr
from methods._errors import ConfigError
from methods._hparams import (
    ASAM_NAMES,
    BALANCER_NAMES,
    BASE_COMMON,
    BASE_NAMES,
    DEFAULT_LR,
    HPARAMS,
    IRE_NAMES,
    PERTURB_NAMES,
    HParam,
)

BASE_SPECIFIC = BASE_NAMES - BASE_COMMON  # momentum, nesterov (sgd); betas, eps (adamw); others by signature


@dataclass(frozen=True)
class BuildContext:
    """What `build_optimizer` knows beyond parameters and hyperparameters, handed to a plug-in's `build`."""

    model: nn.Module | None
    names: Mapping[int, str]  # id(parameter) -> its name, where known
    pairs: Sequence[Any]  # scale-invariant (x, y) pairs
    batchnorms: Sequence[nn.Module]  # to freeze during replayed passes


@dataclass(frozen=True)
class Preset:
    """Which of the five parts a method uses (the parts' knobs are hyperparameters)."""

    perturbation: str = "none"  # none | sam | asam | functional
    balancer: str = "none"  # none | obar | nbar
    ire: bool = False
    perturb_scope: str = "all"  # all | pairs (lora_sam: only the LoRA pair parameters)


@dataclass(frozen=True)
class MethodInfo:
    """A registered method: what it is, where it comes from, what it costs, how to tune it."""

    name: str
    description: str
    citation: str
    preset: Preset
    default_base: str
    defaults: Mapping[str, Any] = field(default_factory=dict)
    search_space: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # plug-ins (`register_method`): their own builder, every hyperparameter they take, declared cost
    build: Callable[[list[Any], dict[str, Any], BuildContext], Any] | None = None
    own: Mapping[str, HParam] = field(default_factory=dict)
    cost: float | Callable[[Mapping[str, Any]], float] | None = None

    @property
    def plugin(self) -> bool:
        """A method registered with its own builder (not a preset of the composable step)."""
        return self.build is not None

    @property
    def needs_pairs(self) -> bool:
        """Balancers and LoRA-restricted SAM act on scale-invariant pairs and need some."""
        return self.preset.balancer != "none" or self.preset.perturb_scope == "pairs"

    @property
    def hyperparameters(self) -> frozenset[str]:
        """Every name `build_optimizer` accepts for this method (with any base)."""
        if self.plugin:
            return frozenset(self.own)
        names = set(BASE_NAMES)
        if self.preset.perturbation != "none":
            names |= PERTURB_NAMES
        if self.preset.perturbation == "asam":
            names |= ASAM_NAMES
        if self.preset.balancer != "none":
            names |= BALANCER_NAMES
        if self.preset.ire:
            names |= IRE_NAMES
        return frozenset(names)

    def resolve(self, hparams: Mapping[str, Any], *, need_horizon: bool = True) -> dict[str, Any]:
        """Validate user hyperparameters and fill defaults; raise ConfigError naming the field.

        `need_horizon=False` skips only the check that a schedule has its `total_steps`: the cost of a
        step does not depend on the horizon, and the horizon is computed from that cost.
        """
        unknown = sorted(set(hparams) - self.hyperparameters)
        if unknown:
            raise ConfigError(
                f"unknown hyperparameter {unknown[0]!r} for method {self.name!r}; "
                f"valid: {', '.join(sorted(self.hyperparameters))}")
        table = {**HPARAMS, **self.own}
        base = table["base"].check("base", hparams.get("base", self.defaults.get("base", self.default_base)))
        other = _other_base_names(self, base, hparams)
        allowed = (self.hyperparameters - other) | {"base"}
        out: dict[str, Any] = {"base": base}
        for name in sorted(allowed - {"base"}):
            if name in hparams:
                value = hparams[name]
            elif name in self.defaults:
                value = self.defaults[name]
            elif name == "lr":
                value = DEFAULT_LR[base] if base in DEFAULT_LR else default_lr(base)
            else:
                value = table[name].default
            out[name] = table[name].check(name, value)
        if not self.plugin:
            _check_combination(self, out, need_horizon)
        return out

    def grad_evals_per_step(self, **hparams: Any) -> float:
        """Declared gradient evaluations per step; `opt.counts` must match it (tested)."""
        hp = self.resolve(hparams, need_horizon=False)
        if self.plugin:
            return float(self.cost(hp) if callable(self.cost) else self.cost)  # type: ignore[arg-type]
        evals = 1.0
        if self.preset.perturbation != "none":
            evals += 1.0
            if hp["preconditioner"] == "fisher":
                evals += 1.0
        if self.preset.ire and hp["curvature"] == "fisher":
            evals += 1.0 / hp["ire_interval"]
        return evals

    def forwards_per_step(self, **hparams: Any) -> float:
        """Declared forward passes per step: one per gradient evaluation, except IRE's Fisher pass
        without a perturbation, which is a second backward through the step's own forward."""
        evals = self.grad_evals_per_step(**hparams)
        if self.plugin or not self.preset.ire or self.preset.perturbation != "none":
            return evals
        hp = self.resolve(hparams, need_horizon=False)
        return evals - 1.0 / hp["ire_interval"] if hp["curvature"] == "fisher" else evals


def _other_base_names(info: MethodInfo, base: str, hparams: Mapping[str, Any]) -> frozenset[str]:
    """Base-specific names `base` does not take; a ConfigError if the user set one of them."""
    specific = info.hyperparameters & BASE_SPECIFIC
    if not specific:
        return frozenset()
    other = frozenset(specific - base_takes(base))
    wrong = sorted(set(hparams) & other)
    if wrong and base in BUILTIN:
        owner = "adamw" if base == "sgd" else "sgd"
        raise ConfigError(f"{wrong[0]} belongs to base {owner!r}, but {info.name} uses base {base!r}; "
                          f"set base: {owner} or drop {wrong[0]}")
    if wrong:
        takes = ", ".join(sorted(base_takes(base) | {"lr", "weight_decay"}))
        raise ConfigError(f"base {base!r} of {info.name} takes no {wrong[0]} (it takes {takes}); drop {wrong[0]}")
    return other


def _check_combination(info: MethodInfo, hp: Mapping[str, Any], need_horizon: bool = True) -> None:
    """Combinations that are individually valid but cannot work together."""
    if hp["base"] != "adamw" and hp.get("preconditioner") == "adam":
        raise ConfigError(f"preconditioner 'adam' reads AdamW's second moments, but {info.name} uses base "
                          f"{hp['base']!r}; "
                          "use preconditioner: ema_sq (keeps its own statistics) or base: adamw")
    if hp["base"] != "adamw" and hp.get("curvature") == "adam":
        raise ConfigError(f"curvature 'adam' reads AdamW's second moments, but {info.name} uses base "
                          f"{hp['base']!r}; "
                          "use curvature: fisher or grad_sq, or base: adamw")
    schedules = [k for k in ("schedule", "rho_schedule") if hp.get(k, "constant") != "constant"]
    if need_horizon and schedules and hp.get("total_steps") is None:
        raise ConfigError(f"{schedules[0]} {hp[schedules[0]]!r} needs total_steps (the schedule's horizon)")


_REGISTRY: dict[str, MethodInfo] = {}
_UNAVAILABLE: dict[str, str] = {}  # known methods whose library is not installed -> what to install


def register_unavailable(name: str, why: str) -> None:
    """Name a method that exists only with an optional extra, so that asking for it says what to install."""
    _UNAVAILABLE[name] = why


def register(info: MethodInfo) -> MethodInfo:
    """Add a method; names are unique."""
    if info.name in _REGISTRY:
        raise ValueError(f"method {info.name!r} is already registered")
    _REGISTRY[info.name] = info
    return info


def unavailable_reason(name: str) -> str | None:
    """Why a known method is not registered here (its optional extra is missing), or None."""
    return _UNAVAILABLE.get(name)


def list_methods() -> list[MethodInfo]:
    """Every registered method, sorted by name."""
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]


def get_method(name: str) -> MethodInfo:
    """The method called `name`, or a ConfigError that lists every valid name."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        if isinstance(name, str) and name in _UNAVAILABLE:
            raise ConfigError(_UNAVAILABLE[name]) from None
        raise ConfigError(f"unknown method {name!r}; valid: {', '.join(sorted(_REGISTRY))}") from None


# --- default search spaces (the ranges the papers searched) -------------------------------------
def _log(low: float, high: float) -> dict[str, Any]:
    return {"type": "float", "low": low, "high": high, "log": True}


def _uniform(low: float, high: float) -> dict[str, Any]:
    return {"type": "float", "low": low, "high": high}


def _cat(*values: Any) -> dict[str, Any]:
    return {"type": "categorical", "values": list(values)}


LR_SPACE = {"sgd": _log(1e-3, 0.5), "adamw": _log(1e-5, 1e-2)}
BALANCER_SPACE = {"mu0": _log(1e-3, 1.0), "schedule": _cat("constant", "linear", "cosine")}


def _space(base: str, **extra: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {"lr": LR_SPACE[base], **extra}


FORET = "Foret et al., Sharpness-Aware Minimization for Efficiently Improving Generalization, ICLR 2021"
KWON = "Kwon et al., ASAM: Adaptive Sharpness-Aware Minimization for Scale-Invariant Learning, ICML 2021"
SINGH = ("Singh et al., Avoiding spurious sharpness minimization broadens applicability of SAM "
         "(Functional-SAM, preconditioned SAM), ICML 2025")
LI = ("Li, Zhang and He, Implicit Regularization of Sharpness-Aware Minimization for "
      "Scale-Invariant Problems (BAR), NeurIPS 2024")
WANG = ("Wang et al., Improving Generalization and Convergence by Enhancing Implicit "
        "Regularization (IRE), NeurIPS 2024")

for _info in (
    MethodInfo("sgd", "SGD with momentum: the reference for SGD-based methods",
               "Robbins and Monro 1951; Polyak 1964", Preset(), "sgd", search_space=_space("sgd")),
    MethodInfo("adamw", "AdamW: the reference for AdamW-based methods",
               "Loshchilov and Hutter, Decoupled Weight Decay Regularization, ICLR 2019", Preset(), "adamw",
               search_space=_space("adamw")),
    MethodInfo("sam", "SAM: gradient at the worst-case point within radius rho", FORET,
               Preset(perturbation="sam"), "sgd", search_space=_space("sgd", rho=_log(0.01, 0.5))),
    MethodInfo("asam", "ASAM (official rule): SAM with the perturbation scaled by T = |w| + asam_eta on weights, "
               "T = 1 on biases (scale-invariant sharpness)", KWON,
               Preset(perturbation="asam"), "sgd", defaults={"rho": 0.5},
               search_space=_space("sgd", rho=_log(0.05, 2.0))),
    MethodInfo("psam", "Preconditioned SAM: perturbation along AdamW's preconditioned gradient", SINGH,
               Preset(perturbation="sam"), "adamw", defaults={"preconditioner": "adam"},
               search_space=_space("adamw", rho=_log(0.01, 0.5), preconditioner=_cat("adam", "ema_sq"))),
    MethodInfo("fsam", "Functional-SAM: perturbed Jacobian times the unperturbed loss gradient in output space",
               SINGH, Preset(perturbation="functional"), "sgd", search_space=_space("sgd", rho=_log(0.01, 0.5))),
    MethodInfo("pfsam", "Preconditioned Functional-SAM: Functional-SAM with AdamW's preconditioner", SINGH,
               Preset(perturbation="functional"), "adamw", defaults={"preconditioner": "adam"},
               search_space=_space("adamw", rho=_log(0.01, 0.5), preconditioner=_cat("adam", "ema_sq"))),
    MethodInfo("obar", "oBAR (reconstructed from SAM's drift; the paper's Algorithm 3 was unavailable): before "
               "the base step x *= 1 + lr*c, y *= 1 - lr*c with c = -mu_t ||g|| D / (|x|^2 + |y|^2)^2, SAM's "
               "overparametrized-regime drift; one gradient per step",
               LI, Preset(balancer="obar"), "adamw", search_space=_space("adamw", **BALANCER_SPACE)),
    MethodInfo("nbar", "nBAR (reconstructed from SAM's drift; the paper's Algorithm 2 was unavailable): before "
               "the base step x *= 1 + lr*c, y *= 1 - lr*c with c = mu_t (|g_x|^2 - |g_y|^2) / (||g|| (|x|^2 + "
               "|y|^2)), SAM's first-order drift, ||g|| global; one gradient per step",
               LI, Preset(balancer="nbar"), "adamw", search_space=_space("adamw", **BALANCER_SPACE)),
    MethodInfo("lora_sam", "SAM restricted to the trainable LoRA parameters (BAR's baseline)", LI,
               Preset(perturbation="sam", perturb_scope="pairs"), "adamw",
               search_space=_space("adamw", rho=_log(0.005, 0.5))),
    MethodInfo("sgd_ire", "SGD-IRE: SGD with the flat directions' update boosted by kappa", WANG,
               Preset(ire=True), "sgd", defaults={"kappa": 1.0},
               search_space=_space("sgd", kappa=_log(0.5, 10.0), gamma=_uniform(0.5, 0.99))),
    MethodInfo("admire", "AdmIRE: AdamW with the flat directions' update boosted by kappa", WANG,
               Preset(ire=True), "adamw",
               search_space=_space("adamw", kappa=_uniform(1.0, 5.0), gamma=_uniform(0.6, 0.99))),
    MethodInfo("sam_ire", "SAM-IRE: SAM with the flat directions' update boosted by kappa", WANG,
               Preset(perturbation="sam", ire=True), "sgd", defaults={"kappa": 1.0},
               search_space=_space("sgd", rho=_log(0.01, 0.5), kappa=_log(0.5, 10.0),
                                   gamma=_uniform(0.5, 0.99))),
):
    register(_info)
