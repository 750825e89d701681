"""pytorch-optimizer's sharpness-aware optimizers as sharptune methods (the optional extra `comparators`).

The library's own classes do the work; this file only builds them and drives their phases
(`first_step`, `second_step`, ...) through `ClosureAdapter`, so each pass is counted and replayed.
Each method declares the passes it really makes:

| method | library class | passes per step |
|---|---|---|
| po_sam | SAM (base optimizer class) | 2 |
| gsam | GSAM (base optimizer instance; constant rho) | 2 |
| wsam | WSAM | 2 |
| looksam | LookSAM | 1 + 1/looksam_k |
| friendly_sam | FriendlySAM | 2 |

LookSAM's own `step()` calls the closure on every step, although between its every-k perturbed steps
the gradient is taken again at the same point; the driver calls `first_step`/`second_step` with the
first gradient instead (the same update: the replayed pass computes the same gradient), so LookSAM
costs what its paper claims.

Left out (`LEFT_OUT` says why, and a test checks that the reason still holds): BSAM, whose 4.1.0
step leaves its noise and its perturbation in the weights, and GAM, which 4.1.0 does not ship.
The library is imported on the first build (it takes seconds); the methods are registered only
where it is installed, and elsewhere naming one is a ConfigError that names the extra. This module
registers them when imported, which the registry does on its first lookup (`import methods` does not).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from methods._adapter import ClosureAdapter
from methods._base_optimizers import base_class, base_kwargs, comparators_installed
from methods._plugins import hparam, register_method
from methods._registry import BuildContext, get_method, register_unavailable

EXTRA = "pip install -e '.[comparators]' (pytorch-optimizer==4.1.0)"
Closure = Callable[[], Any]
Clip = Callable[[], None]


# --- drivers: one step of each library class, every pass through the counted closure -------------
def _two_pass(inner: Any, closure: Closure, clip: Clip) -> None:
    """SAM, FriendlySAM, WSAM: gradient, perturb (first_step), gradient there, restore + base step."""
    closure()
    inner.first_step(zero_grad=True)
    closure()
    clip()
    inner.second_step()


def _looksam(inner: Any, closure: Closure, clip: Clip) -> None:
    """LookSAM: the perturbed gradient every k-th step only; otherwise the stored direction is reused."""
    closure()
    full = inner.get_step() % inner.k == 0
    inner.first_step(zero_grad=full)
    if full:
        closure()
    clip()
    inner.second_step()


def _gsam(inner: Any, closure: Closure, clip: Clip) -> None:
    """GSAM.step's phases, with clipping before the base step."""
    closure()
    inner.perturb_weights(rho=inner.rho_t)
    closure()
    inner.gradient_decompose(inner.alpha)
    inner.un_perturb()
    inner.sync_grad()
    clip()
    inner.base_optimizer.step()
    inner.update_rho_t()


class _ConstantRho:
    """GSAM's rho scheduler: a constant radius (sharptune's trainer keeps the lr constant too)."""

    def __init__(self, rho: float) -> None:
        self.rho = rho

    def step(self) -> float:
        return self.rho


# --- builders ------------------------------------------------------------------------------------
def _base(hp: Mapping[str, Any]) -> tuple[type, dict[str, Any]]:
    import torch

    cls = {"sgd": torch.optim.SGD, "adamw": torch.optim.AdamW}.get(hp["base"]) or base_class(hp["base"])
    return cls, base_kwargs(hp["base"], hp)


def _library() -> Any:
    import pytorch_optimizer  # the optional extra; seconds to import, so only when a comparator is built

    return pytorch_optimizer


def _wrap(name: str, inner: Any, hp: dict[str, Any], context: BuildContext, drive: Any) -> ClosureAdapter:
    return ClosureAdapter(inner, info=get_method(name), hparams=hp, context=context, drive=drive, clips=True)


def _build_po_sam(params: list[Any], hp: dict[str, Any], context: BuildContext) -> ClosureAdapter:
    cls, kwargs = _base(hp)
    inner = _library().SAM(params, cls, rho=hp["rho"], adaptive=hp["adaptive"], **kwargs)
    return _wrap("po_sam", inner, hp, context, _two_pass)


def _build_friendly_sam(params: list[Any], hp: dict[str, Any], context: BuildContext) -> ClosureAdapter:
    cls, kwargs = _base(hp)
    inner = _library().FriendlySAM(params, cls, rho=hp["rho"], sigma=hp["friendly_sigma"],
                                   lmbda=hp["friendly_lambda"], adaptive=hp["adaptive"], **kwargs)
    return _wrap("friendly_sam", inner, hp, context, _two_pass)


def _build_looksam(params: list[Any], hp: dict[str, Any], context: BuildContext) -> ClosureAdapter:
    cls, kwargs = _base(hp)
    inner = _library().LookSAM(params, cls, rho=hp["rho"], k=hp["looksam_k"], alpha=hp["looksam_alpha"],
                               adaptive=hp["adaptive"], **kwargs)
    return _wrap("looksam", inner, hp, context, _looksam)


def _build_wsam(params: list[Any], hp: dict[str, Any], context: BuildContext) -> ClosureAdapter:
    cls, kwargs = _base(hp)
    inner = _library().WSAM(context.model or nn.Module(), params, cls, rho=hp["rho"], gamma=hp["wsam_gamma"],
                            adaptive=hp["adaptive"], decouple=hp["wsam_decouple"], **kwargs)
    return _wrap("wsam", inner, hp, context, _two_pass)


def _build_gsam(params: list[Any], hp: dict[str, Any], context: BuildContext) -> ClosureAdapter:
    cls, kwargs = _base(hp)
    base = cls(params, **kwargs)
    inner = _library().GSAM(params, base, context.model or nn.Module(), _ConstantRho(hp["rho"]),
                            alpha=hp["gsam_alpha"], adaptive=hp["adaptive"])
    return _wrap("gsam", inner, hp, context, _gsam)


# --- the catalogue: citation, default search space (from each paper), declared cost -------------
def _log(low: float, high: float) -> dict[str, Any]:
    return {"type": "float", "low": low, "high": high, "log": True}


def _uniform(low: float, high: float) -> dict[str, Any]:
    return {"type": "float", "low": low, "high": high}


SGD_BASE = {"lr": None, "momentum": 0.9, "nesterov": False, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0,
            "grad_clip": None, "rho": 0.05,
            "adaptive": hparam(False, doc="scale the perturbation by w^2 (pytorch-optimizer's adaptive, ASAM-like)")}
LR = {"lr": _log(1e-3, 0.5)}
RHO = {"rho": _log(0.01, 0.5)}

CATALOGUE: list[dict[str, Any]] = [
    dict(name="po_sam", build=_build_po_sam, grad_evals_per_step=2.0,
         description="pytorch-optimizer's SAM: the same rule as sam, from the library (a cross-check of ours)",
         citation="Foret et al., Sharpness-Aware Minimization for Efficiently Improving Generalization, ICLR 2021",
         hyperparameters=SGD_BASE, search_space={**LR, **RHO}),
    dict(name="gsam", build=_build_gsam, grad_evals_per_step=2.0,
         description="GSAM: SAM's gradient minus alpha times the unperturbed gradient's component orthogonal "
                     "to it (surrogate gap); constant rho",
         citation="Zhuang et al., Surrogate Gap Guided Sharpness-Aware Minimization, ICLR 2022",
         hyperparameters={**SGD_BASE, "gsam_alpha": hparam(0.4, low=0.0, high=1.0, doc="GSAM's alpha")},
         search_space={**LR, "rho": _log(0.01, 1.0), "gsam_alpha": _uniform(0.0, 0.4)}),
    dict(name="wsam", build=_build_wsam, grad_evals_per_step=2.0,
         description="WSAM: the sharpness term weighted by gamma / (1 - gamma) beside the loss gradient "
                     "(decoupled from the base step by default)",
         citation="Yue et al., Sharpness-Aware Minimization Revisited: Weighted Sharpness as a "
                  "Regularization Term, KDD 2023",
         hyperparameters={**SGD_BASE, "wsam_gamma": hparam(0.9, low=0.0, high=0.99, doc="WSAM's gamma"),
                          "wsam_decouple": hparam(True, doc="apply the sharpness term after the base step")},
         search_space={**LR, **RHO, "wsam_gamma": _uniform(0.5, 0.95)}),
    dict(name="looksam", build=_build_looksam,
         grad_evals_per_step=lambda hp: 1.0 + 1.0 / hp["looksam_k"],
         description="LookSAM: SAM's perturbed gradient every k steps; in between, the stored sharpness "
                     "direction is added to the plain gradient",
         citation="Liu et al., Towards Efficient and Scalable Sharpness-Aware Minimization, CVPR 2022",
         hyperparameters={**SGD_BASE, "rho": 0.1,
                          "looksam_k": hparam(5, low=1, integer=True, doc="steps between perturbed gradients"),
                          "looksam_alpha": hparam(0.7, low=0.01, high=0.99, doc="weight of the stored direction")},
         search_space={**LR, **RHO, "looksam_k": {"type": "categorical", "values": [2, 5, 10]},
                       "looksam_alpha": _uniform(0.3, 0.9)}),
    dict(name="friendly_sam", build=_build_friendly_sam, grad_evals_per_step=2.0,
         description="Friendly SAM (F-SAM in its paper): the perturbation along the gradient minus sigma times "
                     "its running mean (the full-gradient component removed)",
         citation="Li et al., Friendly Sharpness-Aware Minimization, CVPR 2024",
         hyperparameters={**SGD_BASE, "friendly_sigma": hparam(1.0, low=0.0, doc="F-SAM's sigma"),
                          "friendly_lambda": hparam(0.9, low=0.0, high=0.999, doc="F-SAM's lambda (EMA)")},
         search_space={**LR, **RHO, "friendly_lambda": _uniform(0.6, 0.95)}),
]
NAMES = tuple(entry["name"] for entry in CATALOGUE)
LEFT_OUT = {
    "bsam": "pytorch-optimizer 4.1.0's BSAM never takes back the noise (first_step) nor the perturbation "
            "(second_step) it adds to the weights, and its momentum averages weight_decay * g instead of "
            "g + weight_decay * w (Moellenhoff and Khan, Algorithm 1): with lr -> 0 a step still moves the "
            "weights, so it is not bSAM and would not be a fair comparator",
    "gam": "pytorch-optimizer 4.1.0 has no GAM (gradient norm aware minimization)",
}


def register_all() -> None:
    """Register every comparator where pytorch-optimizer is installed; elsewhere, say which extra is missing."""
    for name, why in LEFT_OUT.items():
        register_unavailable(name, f"method {name!r} is left out: {why}")
    if not comparators_installed():
        for name in NAMES:
            register_unavailable(name, f"method {name!r} comes from pytorch-optimizer: {EXTRA}")
        return
    for entry in CATALOGUE:
        fields = dict(entry)
        register_method(fields.pop("name"), **fields)


register_all()  # on import: `methods.catalogue` names this module a provider, imported on the first lookup
