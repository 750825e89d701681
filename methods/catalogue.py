"""The catalogue: every built-in method, with its citation, its default base and its default search space.

Each method is a `Preset` of the parts the family files register (`sam.py`, `vasso.py`,
`precondition.py`, `bar.py`, `ire.py`); its hyperparameters and its cost in gradient evaluations follow from those parts
(`MethodInfo`). The comparators from pytorch-optimizer (the extra `comparators`) are registered on the
first lookup by `methods.integrations.pytorch_optimizer`, and plug-ins with `register_method`.
docs/METHODS.md says what each part computes, exactly.
"""

from __future__ import annotations

from typing import Any

from methods import bar, ire, precondition, sam, vasso  # noqa: F401  (the parts the presets name register on import)
from methods._registry import MethodInfo, Preset, register, register_provider


# --- default search spaces (the ranges the papers searched) -------------------------------------
def _log(low: float, high: float) -> dict[str, Any]:
    return {"type": "float", "low": low, "high": high, "log": True}


def _uniform(low: float, high: float) -> dict[str, Any]:
    return {"type": "float", "low": low, "high": high}


def _cat(*values: Any) -> dict[str, Any]:
    return {"type": "categorical", "values": list(values)}


LR_SPACE = {"sgd": _log(1e-3, 0.5), "adamw": _log(1e-5, 1e-2)}
BALANCER_SPACE = {"mu0": _log(0.2, 2.0), "schedule": _cat("linear", "cosine", "constant")}  # the paper's grids (App. D)


def _space(base: str, **extra: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {"lr": LR_SPACE[base], **extra}


FORET = "Foret et al., Sharpness-Aware Minimization for Efficiently Improving Generalization, ICLR 2021"
KWON = "Kwon et al., ASAM: Adaptive Sharpness-Aware Minimization for Scale-Invariant Learning, ICML 2021"
LI_GIANNAKIS = ("Li and Giannakis, Enhancing Sharpness-Aware Optimization Through Variance Suppression (VaSSO), "
                "NeurIPS 2023, arXiv 2309.15639; official code BingcongLi/VaSSO (3524bad)")
SINGH = ("Singh et al., Avoiding spurious sharpness minimization broadens applicability of SAM "
         "(Functional-SAM, preconditioned SAM), ICML 2025")
LI = ("Li, Zhang and He, Implicit Regularization of Sharpness-Aware Minimization for "
      "Scale-Invariant Problems (BAR), NeurIPS 2024, arXiv 2410.14802, Algorithms 2 (nBAR) and 3 (oBAR)")
WANG = ("Wang et al., Improving Generalization and Convergence by Enhancing Implicit "
        "Regularization (IRE), NeurIPS 2024; official code wmz9/IRE-algorithm-framework (aa6a599)")
# the official code's other choices, as options (every script is in wmz9/IRE-algorithm-framework at aa6a599)
IRE_OPTIONS = ("ire_start: lr_warmup starts right after the lr warm-up as NLP/LLM/train_admire_*_Llama.py; "
               "ire_ties: official is NLP/LLM/ire.py update_mask (default: exactly round(gamma p) coordinates)")

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
    MethodInfo("vasso", "VaSSO: SAM perturbed along an exponential average of the gradients, d_t = (1 - vasso_theta) "
               "d_(t-1) + vasso_theta g_t (official rule; vasso_theta 1 is SAM)", LI_GIANNAKIS,
               Preset(perturbation="vasso"), "sgd",
               search_space=_space("sgd", rho=_log(0.01, 0.5), vasso_theta=_uniform(0.1, 1.0))),
    MethodInfo("psam", "Preconditioned SAM: perturbation along AdamW's preconditioned gradient", SINGH,
               Preset(perturbation="sam"), "adamw", defaults={"preconditioner": "adam"},
               search_space=_space("adamw", rho=_log(0.01, 0.5), preconditioner=_cat("adam", "ema_sq"))),
    MethodInfo("fsam", "Functional-SAM: perturbed Jacobian times the unperturbed loss gradient in output space",
               SINGH, Preset(perturbation="functional"), "sgd", search_space=_space("sgd", rho=_log(0.01, 0.5))),
    MethodInfo("pfsam", "Preconditioned Functional-SAM: Functional-SAM with AdamW's preconditioner", SINGH,
               Preset(perturbation="functional"), "adamw", defaults={"preconditioner": "adam"},
               search_space=_space("adamw", rho=_log(0.01, 0.5), preconditioner=_cat("adam", "ema_sq"))),
    MethodInfo("obar", "oBAR (the paper's Algorithm 3): before each base step, per LoRA pair, if |x| >= |y| "
               "then x *= 1 - alpha_t lr_t, y *= 1 + alpha_t lr_t, else the reverse; alpha_t = mu0 s(t/T), lr_t the "
               "group's current lr; one gradient per step (bar_rule: drift is a variant of ours)",
               LI, Preset(balancer="obar"), "adamw", search_space=_space("adamw", **BALANCER_SPACE)),
    MethodInfo("nbar", "nBAR (the paper's Algorithm 2): before each base step, per LoRA pair, if |g_x| >= |g_y| "
               "then x *= 1 + alpha_t lr_t, y *= 1 - alpha_t lr_t, else the reverse; alpha_t = mu0 s(t/T), lr_t the "
               "group's current lr; one gradient per step (bar_rule: drift is a variant of ours)",
               LI, Preset(balancer="nbar"), "adamw", search_space=_space("adamw", **BALANCER_SPACE)),
    MethodInfo("lora_sam", "SAM restricted to the trainable LoRA parameters (BAR's baseline)", LI,
               Preset(perturbation="sam", perturb_scope="pairs"), "adamw",
               search_space=_space("adamw", rho=_log(0.05, 0.2))),  # the BAR paper's grid for LoRA-SAM
    MethodInfo("sgd_ire", "SGD-IRE: SGD with the flat directions' update boosted by kappa; start after a third "
               "of total_steps as CV/cifar/cifar.py (IRE_start_epoch 70 of 200), K = 10 (mask_interval); "
               + IRE_OPTIONS, WANG,
               Preset(ire=True), "sgd", defaults={"kappa": 1.0},
               search_space=_space("sgd", kappa=_log(0.5, 10.0), gamma=_uniform(0.5, 0.99))),
    MethodInfo("admire", "AdmIRE: AdamW with the flat directions' update boosted by kappa; start after a third "
               "of total_steps as CV/imagenet/main.py (ViT, ire_epochs 100 of 300), K = 10; " + IRE_OPTIONS, WANG,
               Preset(ire=True), "adamw",
               search_space=_space("adamw", kappa=_uniform(1.0, 5.0), gamma=_uniform(0.6, 0.99))),
    MethodInfo("sam_ire", "SAM-IRE: SAM with the flat directions' update boosted by kappa; start after a third "
               "of total_steps as CV/cifar/cifar.py (samire), K = 10; " + IRE_OPTIONS, WANG,
               Preset(perturbation="sam", ire=True), "sgd", defaults={"kappa": 1.0},
               search_space=_space("sgd", rho=_log(0.01, 0.5), kappa=_log(0.5, 10.0),
                                   gamma=_uniform(0.5, 0.99))),
):
    register(_info)


register_provider("methods.integrations.pytorch_optimizer")  # po_sam, gsam, wsam, looksam, friendly_sam
