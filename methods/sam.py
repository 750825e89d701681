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

from methods._engine import Closure
from methods._hparams import ASAM_NAMES, PERTURB_NAMES, schedule_factor
from methods._parts import PARTS, Part, part
from methods._passes import RngSnapshot, kept_copy, logits_of

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
                 scaled: Sequence[bool] | None = None) -> list[Tensor]:
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
    return torch._foreach_mul(direction, rho / (norm + NORM_EPS))


@part("perturbation", "sam")
class Sam(Part):
    """SAM: ε = ρ · P⁻¹g / ‖P⁻¹g‖, g̃ = ∇L(θ + ε) on the same batch, θ restored exactly. The optimizer's step runs
    g = first_gradient(); perturb(g); g̃ = perturbed_gradient(); restore(); then the base step with g̃."""

    takes, extra_evals = PERTURB_NAMES, 1.0

    def __init__(self, opt: Any, names: Mapping[int, str]) -> None:
        self.opt, self.sync = opt, opt.hparams["perturb_sync"] == "global"  # local: ε from this rank's own g
        lora = opt.info.preset.perturb_scope == "pairs"  # lora_sam: only the pairs' parameters move
        self.scope = sorted({i for pair in opt._pair_index for i in pair}) if lora else list(range(len(opt._params)))
        self.params = [opt._params[i] for i in self.scope]
        self.scaled: list[bool] | None = None  # ASAM's T = |θ| + η on these tensors (Asam)
        self.saved: list[Tensor] | None = None  # θ while perturbed (a buffer kept across steps)
        precondition = PARTS.get(("preconditioner", opt.hparams["preconditioner"]))  # P⁻¹ (precondition.py)
        self.precondition = precondition(opt, self.scope) if precondition else None

    def rho(self) -> float:
        """ρ of the next step: rho · s(t/T) under rho_schedule."""
        hp = self.opt.hparams
        return hp["rho"] * schedule_factor(hp["rho_schedule"], self.opt._step, hp["total_steps"])

    def first_gradient(self, closure: Closure) -> tuple[list[Tensor], Any]:
        """g = ∇L(θ) on the batch (this rank's shard only under perturb_sync local), and the outputs."""
        _, outputs, grads = self.opt._loss_grads(closure, sync=self.sync)
        return grads, outputs

    def perturb(self, grads: list[Tensor], closure: Closure, rng: RngSnapshot) -> None:
        """θ remembered, then θ ← θ + ε (davda54's first_step)."""
        hp, scope_grads = self.opt.hparams, [grads[i] for i in self.scope]
        pre = self.precondition(scope_grads, closure, rng) if self.precondition else scope_grads
        eps = perturbation(self.name, self.params, scope_grads, pre, rho=self.rho(), asam_eta=hp.get("asam_eta", 0.0),
                           normalize_by_grad=hp["precond_normalize"] == "grad", scaled=self.scaled)
        self.saved = kept_copy(self.saved, self.params)
        with torch.no_grad():
            torch._foreach_add_(self.params, eps)

    def perturbed_gradient(self, closure: Closure, rng: RngSnapshot) -> list[Tensor]:
        """g̃ = ∇L(θ + ε) on the replayed batch."""
        with self.opt._replay(rng):
            return self.opt._loss_grads(closure)[2]

    @torch.no_grad()
    def restore(self) -> None:
        """θ back, exactly (davda54's second_step before its base step)."""
        torch._foreach_copy_(self.params, self.saved)

    def state_dict(self) -> dict[str, Any]:  # the preconditioner's statistics are the family's state
        return self.precondition.state_dict() if self.precondition else {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        return self.precondition.load_state_dict(state) if self.precondition else None


@part("perturbation", "asam")
class Asam(Sam):
    """ASAM: ε = ρ · T²P⁻¹g / ‖T P⁻¹g‖, T = |w| + asam_eta on the weights (official), or on all tensors."""

    takes = PERTURB_NAMES | ASAM_NAMES

    def __init__(self, opt: Any, names: Mapping[int, str]) -> None:
        super().__init__(opt, names)
        self.scaled = [opt.hparams["asam_scope"] == "all" or is_weight(names.get(id(p)), p) for p in self.params]


@part("perturbation", "functional")
class Functional(Sam):
    """Functional-SAM: perturbed like SAM, g̃ = J(θ+ε)ᵀ · ∂ℓ/∂z(θ) (a VJP with the stored cotangent)."""

    @classmethod
    def needs_outputs(cls, method: str, hp: Mapping[str, Any]) -> tuple[str, str] | None:
        return f"{method} (Functional-SAM) needs the model's outputs", "method sam"

    def first_gradient(self, closure: Closure) -> tuple[list[Tensor], Any]:
        loss, outputs = self.opt._forward(closure)
        *grads, self.output_grad = self.opt._grad(loss, [*self.opt._params, logits_of(outputs, "Functional-SAM")],
                                                  sync=self.sync)  # ∂ℓ/∂z at θ (autograd.grad's: no graph)
        return grads, outputs

    def perturbed_gradient(self, closure: Closure, rng: RngSnapshot) -> list[Tensor]:
        with self.opt._replay(rng):
            _, outputs = self.opt._forward(closure)
            return self.opt._grad(logits_of(outputs, "Functional-SAM"), self.opt._params, self.output_grad)
