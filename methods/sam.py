"""The SAM family: SAM, ASAM, lora_sam, Functional-SAM: two passes on one batch (docs/METHODS.md, "Perturbation").

davda54/sam's two phases by name: `perturb` remembers θ and moves it to θ + ε (its `first_step`), then
`perturbed_gradient` takes g̃ there on the replayed batch and `restore` puts θ back (its `second_step`). sam: ε = ρ
· P⁻¹g / ‖P⁻¹g‖; asam: ε = ρ · T²P⁻¹g / ‖T P⁻¹g‖ (normalised by ‖g‖, ‖T g‖ with precond_normalize='grad'); P = 1
gives the papers' SAM and ASAM. ASAM's T is the official code's (SamsungLabs/ASAM): |w| + asam_eta on the weights
(named *weight*; unnamed: two or more dimensions), 1 elsewhere; `asam_scope: all` with asam_eta = 0 is davda54's
adaptive T = |θ|. Functional-SAM perturbs as SAM, and its g̃ = J(θ+ε)ᵀ · ∂ℓ/∂z(θ) is the perturbed Jacobian times
the first pass's output gradient. lora_sam is SAM on the pairs' parameters only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from methods._engine import Closure, Passes
from methods._hparams import SCHEDULES, HParam, number_in, one_of, schedule_factor
from methods._kinds import Preconditioner
from methods._parts import Part, part
from methods._replay import RngSnapshot, kept_copy, logits_of
from methods.precondition import PRECONDITIONING

PERTURBATION: Mapping[str, HParam] = {
    "rho": HParam(0.05, number_in(0.0), "perturbation radius"),
    "rho_schedule": HParam("constant", one_of(*SCHEDULES), "schedule of rho over total_steps"),
    "perturb_sync": HParam("global", one_of("global", "local"),
                           "data parallel: perturb with the gradient averaged over workers (global: SAM on the "
                           "global batch) or with each worker's own shard's (local: m-sharpness, one all-reduce "
                           "fewer); only the perturbed gradient is averaged"),
    "precond_normalize": HParam("precond", one_of("precond", "grad"),
                                "normalise eps by ||P^-1 g|| (precond) or by ||g|| (grad)"),
    **PRECONDITIONING,
}
ASAM: Mapping[str, HParam] = {
    "asam_eta": HParam(0.01, number_in(0.0), "ASAM: T = |w| + asam_eta (official default 0.01)"),
    "asam_scope": HParam("weights", one_of("weights", "all"),
                         "ASAM scales tensors named *weight* (>= 2 dims if unnamed; official) or all (davda54)"),
}

NORM_EPS = 1e-12


def global_norm(tensors: Sequence[Tensor]) -> Tensor:
    """L2 norm over all tensors together."""
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(list(tensors))))


def is_weight(name: str | None, tensor: Tensor) -> bool:
    """Official ASAM's test: "weight" in the parameter's name; without a name, two or more dimensions."""
    return "weight" in name if name is not None else tensor.dim() >= 2


def _times(tensors: Sequence[Tensor], chosen: Sequence[int], scale: Sequence[Tensor]) -> list[Tensor]:
    """tensors[i] · scale[k] for the k-th index i in `chosen` (one foreach product), the others as they are."""
    out = list(tensors)
    if chosen:
        for i, product in zip(chosen, torch._foreach_mul([out[i] for i in chosen], list(scale)), strict=True):
            out[i] = product
    return out


@torch.no_grad()
def perturbation(kind: str, params: Sequence[Tensor], grads: Sequence[Tensor], pre_grads: Sequence[Tensor],
                 *, rho: float, asam_eta: float, normalize_by_grad: bool,
                 scaled: Sequence[bool] | None = None, norm_eps: float = NORM_EPS) -> list[Tensor]:
    """ε per parameter from g and `pre_grads` = P⁻¹g; `scaled`: the tensors ASAM scales (all when None).
    Each product is one foreach operator over every tensor: the cost does not grow with their number."""
    if kind == "asam":
        chosen = list(range(len(params))) if scaled is None else [i for i, s in enumerate(scaled) if s]
        scale = torch._foreach_abs([params[i] for i in chosen]) if chosen else []
        if scale:
            torch._foreach_add_(scale, asam_eta)  # T = |θ| + η
        tp = _times(pre_grads, chosen, scale)  # T P⁻¹g
        norm = global_norm(_times(grads, chosen, scale) if normalize_by_grad else tp)
        direction = _times(tp, chosen, scale)  # T² P⁻¹g
    else:
        direction = list(pre_grads)
        norm = global_norm(grads if normalize_by_grad else direction)
    return torch._foreach_mul(direction, rho / (norm + norm_eps))


@part("perturbation", "sam")
class Sam(Part):
    """SAM: ε = ρ · P⁻¹g / ‖P⁻¹g‖, g̃ = ∇L(θ + ε) on the same batch, θ restored exactly. The optimizer's step runs
    g = first_gradient(); perturb(g); g̃ = perturbed_gradient(); restore(); then the base step with g̃."""

    norm_eps = NORM_EPS  # ε's denominator is ‖·‖ + norm_eps

    hparams, reads, extra_evals = PERTURBATION, frozenset({"total_steps"}), 1.0

    def __init__(self, passes: Passes, scope: Sequence[int]) -> None:
        self.passes, self.scope = passes, list(scope)  # scope: every parameter, or the pairs' (lora_sam)
        self.sync = passes.hparams["perturb_sync"] == "global"  # local: ε from this rank's own g
        self.params = [passes.params[i] for i in self.scope]
        self.scaled: list[bool] | None = None  # ASAM's T = |θ| + η on these tensors (Asam)
        self.saved: list[Tensor] | None = None  # θ while perturbed (a buffer kept across steps)

    def rho(self) -> float:
        """ρ of the next step: rho · s(t/T) under rho_schedule."""
        hp = self.passes.hparams
        return hp["rho"] * schedule_factor(hp["rho_schedule"], self.passes.step, hp["total_steps"])

    def first_gradient(self, closure: Closure) -> tuple[list[Tensor], Any]:
        """g = ∇L(θ) on the batch (this rank's shard only under perturb_sync local), and the outputs."""
        _, outputs, grads = self.passes.loss_grads(closure, sync=self.sync)
        return grads, outputs

    def direction(self, grads: list[Tensor]) -> list[Tensor]:
        """The gradient ε is taken along, on the scope: SAM's is g itself."""
        return grads

    def perturb(self, grads: list[Tensor], closure: Closure, rng: RngSnapshot,
                precondition: Preconditioner | None) -> None:
        """θ remembered, then θ ← θ + ε from the (preconditioned) direction (davda54's first_step)."""
        hp, along = self.passes.hparams, self.direction([grads[i] for i in self.scope])
        pre = precondition(along, closure, rng) if precondition else along
        eps = perturbation(self.name, self.params, along, pre, rho=self.rho(), asam_eta=hp.get("asam_eta", 0.0),
                           normalize_by_grad=hp.get("precond_normalize") == "grad", scaled=self.scaled,
                           norm_eps=self.norm_eps)
        self.saved = kept_copy(self.saved, self.params)
        with torch.no_grad():
            torch._foreach_add_(self.params, eps)

    def perturbed_gradient(self, closure: Closure, rng: RngSnapshot) -> list[Tensor]:
        """g̃ = ∇L(θ + ε) on the replayed batch."""
        with self.passes.replay(rng):
            return self.passes.loss_grads(closure)[2]

    @torch.no_grad()
    def restore(self) -> None:
        """θ back, exactly (davda54's second_step before its base step)."""
        torch._foreach_copy_(self.params, self.saved)


@part("perturbation", "asam")
class Asam(Sam):
    """ASAM: ε = ρ · T²P⁻¹g / ‖T P⁻¹g‖, T = |w| + asam_eta on the weights (official), or on all tensors."""

    hparams = {**PERTURBATION, **ASAM}

    def __init__(self, passes: Passes, scope: Sequence[int]) -> None:
        super().__init__(passes, scope)
        everything = passes.hparams["asam_scope"] == "all"
        self.scaled = [everything or is_weight(passes.names.get(id(p)), p) for p in self.params]


@part("perturbation", "functional")
class Functional(Sam):
    """Functional-SAM: perturbed like SAM, g̃ = J(θ+ε)ᵀ · ∂ℓ/∂z(θ) (a VJP with the stored cotangent)."""

    @classmethod
    def needs_outputs(cls, method: str, hp: Mapping[str, Any]) -> tuple[str, str] | None:
        return f"{method} (Functional-SAM) needs the model's outputs", "method sam"

    def first_gradient(self, closure: Closure) -> tuple[list[Tensor], Any]:
        loss, outputs = self.passes.forward(closure)
        *grads, self.output_grad = self.passes.grad(loss, [*self.passes.params, logits_of(outputs, "Functional-SAM")],
                                                    sync=self.sync)  # ∂ℓ/∂z at θ (autograd.grad's: no graph)
        return grads, outputs

    def perturbed_gradient(self, closure: Closure, rng: RngSnapshot) -> list[Tensor]:
        with self.passes.replay(rng):
            _, outputs = self.passes.forward(closure)
            return self.passes.grad(logits_of(outputs, "Functional-SAM"), self.passes.params, self.output_grad)
