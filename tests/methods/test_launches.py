"""The balancer and the perturbation are a fixed number of operators, whatever the number of tensors.

On a GPU every operator is at least one kernel launch, and on a small model the step is launch-bound:
a per-pair (or per-parameter) Python loop of small kernels costs more than the maths. The operators
are counted with a TorchDispatchMode (what reaches the backends: a foreach operator counts once), on
4 and on 32 pairs or tensors of the same kind; the counts must be equal. The vectorised balancers
must also still be their per-pair rules (the paper's, and our drift rule), checked here against a loop
over pairs in float64.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from methods import build_optimizer
from methods._bar_drift import adam_ratio, drift_balance
from methods.bar import balance
from methods.precondition import apply_inverse, update_ema
from methods.sam import perturbation

NORM_EPS = 1e-12


class _Operators(TorchDispatchMode):
    """Counts every aten operator that reaches the backends while active."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.counts[str(func)] += 1
        return func(*args, **(kwargs or {}))


def _operators(run: Callable[[], object]) -> Counter[str]:
    with _Operators() as mode:
        run()
    return mode.counts


def _pairs(n: int, dtype: torch.dtype = torch.float32, seed: int = 0):
    """n LoRA-like pairs (B: d × r, A: r × k) of a few shapes, their gradients and AdamW-like v̂."""
    g = torch.Generator().manual_seed(seed)
    shapes = [(12, 4, 8), (6, 2, 10), (16, 4, 16)]
    pairs, grads = [], []
    for k in range(n):
        d, r, m = shapes[k % len(shapes)]
        pairs.append((torch.randn(d, r, generator=g, dtype=dtype), 0.5 * torch.randn(r, m, generator=g, dtype=dtype)))
        grads.append((torch.randn(d, r, generator=g, dtype=dtype), torch.randn(r, m, generator=g, dtype=dtype)))
    v = [torch.rand(t.shape, generator=g, dtype=dtype) for pair in grads for t in pair]
    return pairs, grads, v


@pytest.mark.parametrize("scaled", [False, True], ids=["unscaled", "adam_ratio"])
@pytest.mark.parametrize("norm", ["global", "pair"])
@pytest.mark.parametrize("kind", ["nbar", "obar"])
def test_a_drift_balancer_step_is_the_same_operators_on_4_and_on_32_pairs(kind: str, norm: str, scaled: bool) -> None:
    counts = []
    for n in (4, 32):
        pairs, grads, v = _pairs(n)
        lrs = [0.1] * (n // 2) + [0.05] * (n - n // 2)  # two parameter groups

        def step(pairs=pairs, grads=grads, v=v, lrs=lrs) -> None:
            scales = adam_ratio(grads, v, 1e-8) if scaled else None
            grad_norm = torch.tensor(3.0) if norm == "global" else None
            drift_balance(kind, pairs, grads, lrs, 0.5, grad_norm, scales)
        counts.append(_operators(step))
    assert counts[0] == counts[1]


@pytest.mark.parametrize("lrs", ["one", "two"], ids=["one_lr", "two_lrs"])
@pytest.mark.parametrize("kind", ["nbar", "obar"])
def test_the_papers_balancer_step_is_the_same_operators_on_4_and_on_32_pairs(kind: str, lrs: str) -> None:
    """Algorithms 2/3 vectorised: one foreach norm, a comparison per pair as a device vector, two foreach
    scalings; one group's lr or two."""
    counts = []
    for n in (4, 32):
        pairs, grads, _ = _pairs(n)
        rates = [0.1] * n if lrs == "one" else [0.1] * (n // 2) + [0.05] * (n - n // 2)
        counts.append(_operators(lambda pairs=pairs, grads=grads, rates=rates: balance(kind, pairs, grads, rates, 0.5)))
    assert counts[0] == counts[1]


@pytest.mark.parametrize("rule", ["paper", "drift"])
@pytest.mark.parametrize("base", ["sgd", "adamw"])
def test_the_optimizers_balancer_step_is_the_same_operators_on_4_and_on_32_pairs(base: str, rule: str) -> None:
    """The balancer as the optimizer runs it (global ‖g‖, AdamW's v̂ and ratio), on every pair of a model.

    Reading AdamW's step counter (a CPU scalar, one per parameter, as torch's AdamW reads it itself) is
    a host read, no device work: it is left out of the count."""
    counts = []
    for n in (4, 32):
        pairs, grads, _ = _pairs(n)
        params = [torch.nn.Parameter(t.clone()) for pair in pairs for t in pair]
        opt = build_optimizer(params, "nbar", pairs=list(zip(params[::2], params[1::2], strict=True)), base=base,
                              bar_rule=rule)
        flat = [g for pair in grads for g in pair]
        for p, g in zip(params, flat, strict=True):
            p.grad = g.clone()
        opt.base.step()  # AdamW's state, so that its ratio enters
        ops = _operators(lambda opt=opt, flat=flat: opt.balancer.balance(flat))
        ops.pop("aten._local_scalar_dense.default", None)
        counts.append(ops)
    assert counts[0] == counts[1]


def _reference_balance(kind, pairs, grads, lrs, mu, grad_norm, v, eps):
    """The drift rule (ours, `_bar_drift`), pair by pair, with the AdamW ratio of its docstring."""
    out = []
    for k, ((x, y), (gx, gy), lr) in enumerate(zip(pairs, grads, lrs, strict=True)):
        sx, sy, gx2, gy2 = x.square().sum(), y.square().sum(), gx.square().sum(), gy.square().sum()
        g = grad_norm if grad_norm is not None else torch.sqrt(gx2 + gy2)
        if kind == "nbar":
            c = mu * (gx2 - gy2) / ((g + NORM_EPS) * (sx + sy) + NORM_EPS)
        else:
            c = -mu * g * (sx - sy) / ((sx + sy) ** 2 + NORM_EPS)
        if v is not None:
            ax, ay = gx / (v[2 * k].sqrt() + eps), gy / (v[2 * k + 1].sqrt() + eps)
            c = c * torch.sqrt(ax.square().sum() + ay.square().sum()) / (torch.sqrt(gx2 + gy2) + NORM_EPS)
        out.append(((1 + lr * c) * x, (1 - lr * c) * y))
    return out


@pytest.mark.parametrize("kind", ["nbar", "obar"])
def test_the_vectorised_papers_balancer_is_the_per_pair_rule(kind: str) -> None:
    """Algorithms 2/3 pair by pair (≥ ties go to the first branch), with a different η per pair."""
    pairs, grads, _ = _pairs(7, torch.float64)
    pairs[3] = (torch.ones(4, 2, dtype=torch.float64), torch.ones(2, 4, dtype=torch.float64))  # ‖x‖ = ‖y‖
    grads[3] = (torch.ones(4, 2, dtype=torch.float64), torch.ones(2, 4, dtype=torch.float64))  # ‖g_x‖ = ‖g_y‖
    lrs, alpha = [0.1, 0.1, 0.3, 0.1, 0.2, 0.2, 0.1], 0.7
    expected = []
    for (x, y), (gx, gy), lr in zip(pairs, grads, lrs, strict=True):
        if kind == "nbar":
            grow_x = bool(torch.linalg.norm(gx) >= torch.linalg.norm(gy))
        else:
            grow_x = not bool(torch.linalg.norm(x) >= torch.linalg.norm(y))
        a = alpha * lr
        expected.append(((1 + a) * x, (1 - a) * y) if grow_x else ((1 - a) * x, (1 + a) * y))
    balance(kind, pairs, grads, lrs, alpha)
    for got, ref in zip(pairs, expected, strict=True):
        for t, r in zip(got, ref, strict=True):
            torch.testing.assert_close(t, r, rtol=1e-15, atol=0.0)
    tied = 1 + alpha * 0.1 if kind == "nbar" else 1 - alpha * 0.1  # the tie: nBAR grows x, oBAR shrinks it
    torch.testing.assert_close(pairs[3][0], torch.full((4, 2), tied, dtype=torch.float64), rtol=1e-15, atol=0.0)


@pytest.mark.parametrize("scaled", [False, True], ids=["unscaled", "adam_ratio"])
@pytest.mark.parametrize("norm", ["global", "pair"])
@pytest.mark.parametrize("kind", ["nbar", "obar"])
def test_the_vectorised_drift_balancer_is_the_per_pair_rule(kind: str, norm: str, scaled: bool) -> None:
    pairs, grads, v = _pairs(7, torch.float64)
    lrs = [0.1, 0.1, 0.3, 0.1, 0.2, 0.2, 0.1]
    grad_norm = torch.tensor(2.5, dtype=torch.float64) if norm == "global" else None
    expected = _reference_balance(kind, pairs, grads, lrs, 0.7, grad_norm, v if scaled else None, 1e-8)
    drift_balance(kind, pairs, grads, lrs, 0.7, grad_norm, adam_ratio(grads, v, 1e-8) if scaled else None)
    for got, ref in zip(pairs, expected, strict=True):
        for t, r in zip(got, ref, strict=True):
            torch.testing.assert_close(t, r, rtol=1e-12, atol=1e-14)


def test_pairs_of_mixed_dtypes_are_balanced_with_float32_coefficients() -> None:
    pairs, grads, v = _pairs(4)
    half = {1, 2}  # two of the pairs in bf16
    pairs = [tuple(t.bfloat16() for t in p) if k in half else p for k, p in enumerate(pairs)]
    grads = [tuple(t.bfloat16() for t in g) if k in half else g for k, g in enumerate(grads)]
    v = [t.bfloat16() if k // 2 in half else t for k, t in enumerate(v)]
    wide = [tuple(t.double() for t in p) for p in pairs]
    expected = _reference_balance("nbar", wide, [tuple(t.double() for t in g) for g in grads], [0.1] * 4, 5.0,
                                  None, [t.double() for t in v], 1e-8)
    drift_balance("nbar", pairs, grads, [0.1] * 4, 5.0, None, adam_ratio(grads, v, 1e-8))
    for k, (got, ref) in enumerate(zip(pairs, expected, strict=True)):
        for t, r in zip(got, ref, strict=True):
            assert t.dtype == (torch.bfloat16 if k in half else torch.float32)
            torch.testing.assert_close(t.double(), r, **({"rtol": 1e-2, "atol": 1e-2} if k in half else {}))


def _tensors(n: int, seed: int = 0):
    """n parameters (weights and biases), their gradients and a second moment."""
    g = torch.Generator().manual_seed(seed)
    params = [torch.randn((8, 4) if k % 2 == 0 else (4,), generator=g) for k in range(n)]
    grads = [torch.randn(p.shape, generator=g) for p in params]
    v = [torch.rand(p.shape, generator=g) for p in params]
    return params, grads, v


@pytest.mark.parametrize("precondition", [False, True], ids=["plain", "preconditioned"])
@pytest.mark.parametrize("normalize_by_grad", [False, True])
@pytest.mark.parametrize("kind", ["sam", "asam"])
def test_a_perturbation_is_the_same_operators_on_4_and_on_32_tensors(kind: str, normalize_by_grad: bool,
                                                                    precondition: bool) -> None:
    counts = []
    for n in (4, 32):
        params, grads, v = _tensors(n)
        scaled = [p.dim() >= 2 for p in params]  # ASAM scales the weights only

        def step(params=params, grads=grads, v=v, scaled=scaled) -> None:
            pre = apply_inverse(grads, v if precondition else None, 1e-8)
            if precondition:
                update_ema(v, torch._foreach_mul(grads, grads), 0.9)
            perturbation(kind, params, grads, pre, rho=0.05, asam_eta=0.01, normalize_by_grad=normalize_by_grad,
                         scaled=scaled)
        counts.append(_operators(step))
    assert counts[0] == counts[1]


def test_asam_takes_t_as_the_official_code_on_the_scaled_tensors_only() -> None:
    """ε = ρ T²g / ‖T g‖ with T = |θ| + η on the scaled tensors and T = 1 on the others."""
    params, grads, _ = _tensors(5)
    scaled = [True, False, True, True, False]
    t = [p.abs() + 0.01 if s else torch.ones_like(p) for p, s in zip(params, scaled, strict=True)]
    norm = torch.sqrt(sum(((ti * g) ** 2).sum() for ti, g in zip(t, grads, strict=True)))
    eps = perturbation("asam", params, grads, grads, rho=0.05, asam_eta=0.01, normalize_by_grad=False, scaled=scaled)
    for e, ti, g in zip(eps, t, grads, strict=True):
        torch.testing.assert_close(e, 0.05 * ti * ti * g / (norm + NORM_EPS))
