"""The papers' qualitative claims, on small problems where they can be checked in seconds.

- Li et al. (BAR): on scale-invariant problems SAM drives the balancedness |‖x‖² − ‖y‖²| toward 0, faster
  at lower SNR, while SGD keeps it almost constant; oBAR and nBAR reproduce SAM's drift.
- Wang et al. (IRE): on L(u, v) = (1 + u²) v² / 2, GD barely moves along the flat valley, IRE does.
- Singh et al. (Functional-SAM): its gradient is SAM's minus the logit-path term Jᵀ ∇²_z ℓ J ε, to O(ρ²).

The measured numbers are printed (run with -s to see them).
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn
from torch.func import functional_call, jvp, vjp

from methods import build_optimizer
from methods.diagnostics import balancedness

# torch.func.jvp loads forward-AD decompositions through torch.jit.script, which warns (torch internals)
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")

# ------------------------------------------------------------------ balancedness (BAR)
LR, RHO, STEPS = 2e-3, 0.1, 1000
# nBAR's drift equals SAM's to first order when μ0 = ρ (for a pair, SAM changes D by −2ηρ|r| D / √S with
# S = ‖x‖² + ‖y‖², and so does nBAR). oBAR's drift −2ημ0 S D does not see the residual; μ0 = ρ/10 puts
# its rate within an order of magnitude of SAM's at this initialisation (S0 ≈ 4.25).
SETTINGS = {"sgd": {}, "sam": {"rho": RHO}, "nbar": {"mu0": RHO, "base": "sgd"},
            "obar": {"mu0": RHO / 10, "base": "sgd"}}


def _toy(kind: str, alpha: float, method: str, seed: int = 0) -> float:
    """|D_T| / |D_0| after STEPS steps on x yᵀ ≈ A + αN ("matrix") or xᵀy ≈ a + αn ("vector").

    Imbalanced init (‖x‖ = 2, ‖y‖ = 0.5); the noise is drawn afresh every step (one batch per step).
    """
    g = torch.Generator().manual_seed(seed)
    if kind == "vector":
        target = torch.ones((), dtype=torch.float64)
        x0, y0 = torch.randn(10, generator=g, dtype=torch.float64), torch.randn(10, generator=g, dtype=torch.float64)
    else:
        u, w = torch.randn(8, generator=g, dtype=torch.float64), torch.randn(6, generator=g, dtype=torch.float64)
        target = torch.outer(u / u.norm(), w / w.norm())
        x0, y0 = torch.randn(8, generator=g, dtype=torch.float64), torch.randn(6, generator=g, dtype=torch.float64)
    x = nn.Parameter(2.0 * x0 / x0.norm())
    y = nn.Parameter(0.5 * y0 / y0.norm())
    opt = build_optimizer([x, y], method, pairs=[(x, y)], lr=LR, momentum=0.0, **SETTINGS[method])
    noise = torch.Generator().manual_seed(100 + seed)
    d0 = balancedness([(x, y)])["mean"]
    for _ in range(STEPS):
        noisy = target + alpha * torch.randn(target.shape, generator=noise, dtype=torch.float64)
        if kind == "vector":
            opt.step(lambda noisy=noisy: (0.5 * (x @ y - noisy) ** 2, None))
        else:
            opt.step(lambda noisy=noisy: (0.5 * (torch.outer(x, y) - noisy).square().sum(), None))
    return balancedness([(x, y)])["mean"] / d0


@pytest.fixture(scope="module", params=["vector", "matrix"])
def drift(request):
    """|D_T| / |D_0| per (method, alpha) on one toy: alpha 0.1 is high SNR, 1.0 low SNR."""
    table = {(m, a): _toy(request.param, a, m) for m in SETTINGS for a in (0.1, 1.0)}
    for a in (0.1, 1.0):
        print(f"\n{request.param} toy, alpha={a}: |D_T|/|D_0| "
              + "  ".join(f"{m}={table[m, a]:.4f}" for m in SETTINGS))
    return table


def test_sam_shrinks_balancedness_and_sgd_does_not(drift):
    for alpha in (0.1, 1.0):
        assert drift["sgd", alpha] > 0.95, "SGD keeps D almost constant (its drift is O(η²))"
        assert math.log(drift["sam", alpha]) < 10 * math.log(drift["sgd", alpha])  # SAM's: O(ηρ), 10x more
    assert drift["sam", 1.0] < 0.9


def test_sam_shrinks_balancedness_faster_at_lower_snr(drift):
    assert drift["sam", 1.0] < drift["sam", 0.1]
    assert math.log(drift["sam", 1.0]) < 2 * math.log(drift["sam", 0.1])  # clearly, not marginally


@pytest.mark.parametrize("bar", ["obar", "nbar"])
def test_bar_moves_balancedness_like_sam(drift, bar):
    for alpha in (0.1, 1.0):
        assert drift[bar, alpha] < drift["sgd", alpha] - 0.01  # same direction
        ratio = math.log(drift[bar, alpha]) / math.log(drift["sam", alpha])  # both log-rates are negative
        assert 0.1 < ratio < 10, f"{bar} at alpha={alpha}: log-shrink {ratio:.2f}x SAM's"
    # nBAR follows SAM's residual dependence too: stronger at lower SNR
    if bar == "nbar":
        assert drift[bar, 1.0] < drift[bar, 0.1]


# ------------------------------------------------------------------ IRE on (1 + u²) v² / 2
def _valley(method: str, lr: float = 1.0, steps: int = 2000, **hp) -> tuple[float, float]:
    u = nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    v = nn.Parameter(torch.tensor([0.01], dtype=torch.float64))
    opt = build_optimizer([u, v], method, lr=lr, momentum=0.0, **hp)
    for _ in range(steps):
        opt.step(lambda: (((1 + u**2) * v**2 / 2).sum(), None))
    return u.item(), v.item()


def test_gd_barely_moves_along_the_flat_valley():
    u, _ = _valley("sgd")
    print(f"\nGD, eta=1, 2000 steps: u = {u:.4f}")
    assert 0.98 < u < 1.0
    u, v = _valley("sgd", lr=2.0, steps=50)
    assert not math.isfinite(v) or abs(v) > 1e6, "eta = 2 diverges"


def test_ire_reaches_the_flat_minimum():
    # γ = 0.5 of p = 2 coordinates: the mask is {u}, estimated once (interval longer than the run)
    u, v = _valley("sgd_ire", kappa=9000.0, gamma=0.5, ire_interval=10**9, curvature="grad_sq")
    print(f"\nIRE, kappa=9000: u = {u:.4g}, v = {v:.3g}")
    assert abs(u) < 0.05
    assert math.isfinite(v) and abs(v) < 0.01


# ------------------------------------------------------------------ Functional-SAM vs SAM
def _classifier():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 4)).double()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(32, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (32,), generator=g)
    return model, x, y


def _second_gradient(method: str, model: nn.Module, x, y, rho: float) -> dict[str, torch.Tensor]:
    """g̃ the method hands to its base step, read back from one SGD step with lr 1 and no momentum."""
    model = copy.deepcopy(model)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = build_optimizer(model, method, rho=rho, lr=1.0, momentum=0.0)
    opt.step(lambda: (nn.functional.cross_entropy(logits := model(x), y), logits))
    return {n: before[n] - p.detach() for n, p in model.named_parameters()}


def _logit_path_term(model: nn.Module, x, y, rho: float) -> dict[str, torch.Tensor]:
    """Jᵀ ∇²_z ℓ J ε at θ, with ε = ρ g / ‖g‖ (SAM's perturbation)."""
    theta = {n: p.detach().clone().requires_grad_() for n, p in model.named_parameters()}
    names = list(theta)
    grads = torch.autograd.grad(nn.functional.cross_entropy(functional_call(model, theta, (x,)), y),
                                [theta[n] for n in names])
    norm = torch.sqrt(sum(g.square().sum() for g in grads))
    eps = tuple(rho * g / (norm + 1e-12) for g in grads)

    def logits(*params):
        return functional_call(model, dict(zip(names, params, strict=True)), (x,))

    z, j_eps = jvp(logits, tuple(theta[n].detach() for n in names), eps)  # J ε
    _, h_j_eps = jvp(lambda zz: torch.func.grad(lambda w: nn.functional.cross_entropy(w, y))(zz), (z,), (j_eps,))
    _, pullback = vjp(logits, *(theta[n].detach() for n in names))
    return dict(zip(names, pullback(h_j_eps), strict=True))  # Jᵀ ∇²_z ℓ J ε


def test_functional_sam_is_sam_minus_the_logit_path_term():
    model, x, y = _classifier()
    residuals, differences = [], []
    for rho in (2e-2, 1e-2, 5e-3):
        sam = _second_gradient("sam", model, x, y, rho)
        fsam = _second_gradient("fsam", model, x, y, rho)
        term = _logit_path_term(model, x, y, rho)
        residuals.append(math.sqrt(sum((fsam[n] - (sam[n] - term[n])).square().sum() for n in sam)))
        differences.append(math.sqrt(sum((fsam[n] - sam[n]).square().sum() for n in sam)))
    print(f"\nrho = 2e-2, 1e-2, 5e-3: |g_fsam - g_sam| = {differences}, residual = {residuals}")
    for k in (0, 1):
        assert 0.4 < differences[k + 1] / differences[k] < 0.6  # the term itself is O(ρ): it matters
        assert 0.2 < residuals[k + 1] / residuals[k] < 0.3  # what is left is O(ρ²)
    assert residuals[-1] < 0.05 * differences[-1]
