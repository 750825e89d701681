"""methods.diagnostics against quantities known in closed form (docs/METHODS.md, "Diagnostics")."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.autograd.function import once_differentiable

from methods.diagnostics import (
    balancedness,
    grad_norm,
    hessian_trace,
    hvp_function,
    lambda_max,
    sam_edge,
    top_eigenpair,
)

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]


def _spd(eigenvalues: list[float], seed: int = 0) -> torch.Tensor:
    """A dense symmetric matrix with the given eigenvalues (random orthogonal basis)."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(len(eigenvalues), len(eigenvalues), generator=g, dtype=torch.float64))
    return q @ torch.diag(torch.tensor(eigenvalues, dtype=torch.float64)) @ q.T


def _quadratic(h: torch.Tensor, device: str = "cpu"):
    """L(θ) = ½ θᵀ H θ + bᵀ θ with θ split over two parameter tensors (a matrix and a vector)."""
    n = h.shape[0]
    g = torch.Generator().manual_seed(1)
    theta = torch.randn(n, generator=g, dtype=torch.float64)
    a = theta[:4].reshape(2, 2).clone().to(device).requires_grad_()
    b = theta[4:].clone().to(device).requires_grad_()
    hd, lin = h.to(device), torch.randn(n, generator=g, dtype=torch.float64).to(device)

    def loss_fn():
        t = torch.cat([a.reshape(-1), b])
        return 0.5 * t @ hd @ t + lin @ t

    return loss_fn, [a, b]


@pytest.mark.parametrize("device", DEVICES)
def test_lambda_max_on_quadratic_is_the_top_eigenvalue(device):
    loss_fn, params = _quadratic(_spd([5.0, 2.0, 1.0, -0.5, 0.1, 0.0]), device)
    assert lambda_max(loss_fn, params, tol=1e-12) == pytest.approx(5.0, rel=1e-9)
    assert lambda_max(loss_fn, params) == pytest.approx(5.0, rel=1e-3)  # default tolerance 1e-3


def test_top_eigenpair_warm_start_converges_in_fewer_products_to_the_same_value():
    # eigenvalues 5 and 4.5: a small gap, so a random start needs many products
    loss_fn, params = _quadratic(_spd([5.0, 4.5, 1.0, -0.5, 0.1, 0.0]))
    cold = top_eigenpair(loss_fn, params, tol=1e-6)
    assert cold.value == pytest.approx(5.0, rel=1e-4) and cold.products > 30
    warm = top_eigenpair(loss_fn, params, tol=1e-6, start=cold.vector, seed=7)
    assert warm.value == pytest.approx(5.0, rel=1e-4)
    assert warm.products < cold.products / 2
    assert [v.shape for v in warm.vector] == [p.shape for p in params]
    # a start that does not fit the parameters (another model) is ignored, not an error
    other = top_eigenpair(loss_fn, params, tol=1e-6, start=[torch.ones(3)])
    assert other.value == cold.value and other.products == cold.products


def test_lambda_max_accepts_closure_returning_loss_and_outputs():
    loss_fn, params = _quadratic(_spd([3.0, 1.0, 1.0, 0.5, 0.2, 0.1]))
    assert lambda_max(lambda: (loss_fn(), None), params, tol=1e-12) == pytest.approx(3.0, rel=1e-9)


@pytest.mark.parametrize("device", DEVICES)
def test_hessian_trace_is_exact_for_a_diagonal_hessian(device):
    # For diagonal H, vᵀHv = Σ H_ii v_i² = Tr(H) for every Rademacher v.
    diag = [4.0, 3.0, 0.5, 0.25, -1.0, 2.0]
    loss_fn, params = _quadratic(torch.diag(torch.tensor(diag, dtype=torch.float64)), device)
    estimate = hessian_trace(loss_fn, params)
    assert estimate.trace == pytest.approx(sum(diag), rel=1e-12)
    assert estimate.stderr == pytest.approx(0.0, abs=1e-12) and estimate.samples == 10  # stops at min_samples


def test_hessian_trace_estimates_a_dense_hessian():
    h = _spd([5.0, 2.0, 1.0, 0.5, 0.1, 0.0])
    loss_fn, params = _quadratic(h)
    off = (h - torch.diag(torch.diag(h))).square().sum().item()
    std_100 = math.sqrt(2 * off / 100)  # Hutchinson's standard deviation after 100 samples
    estimate = hessian_trace(loss_fn, params, rtol=0.0, min_samples=100, max_samples=100)  # a fixed count
    assert estimate.samples == 100
    assert abs(estimate.trace - 8.6) < 3 * std_100
    assert 0.5 * std_100 < estimate.stderr < 2 * std_100  # the reported standard error is Hutchinson's


def test_finite_difference_fallback_agrees_with_double_backward():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2)).double()
    x, y = torch.randn(16, 3, dtype=torch.float64), torch.randn(16, 2, dtype=torch.float64)

    def loss_fn():
        return nn.functional.mse_loss(model(x), y)

    before = [p.detach().clone() for p in model.parameters()]
    exact = lambda_max(loss_fn, model=model, tol=1e-10)
    fd = lambda_max(loss_fn, model=model, tol=1e-10, mode="fd")
    assert fd == pytest.approx(exact, rel=1e-5)
    assert hessian_trace(loss_fn, model=model, mode="fd", rtol=0.0, max_samples=10).trace == pytest.approx(
        hessian_trace(loss_fn, model=model, rtol=0.0, max_samples=10).trace, rel=1e-5)
    for p, b in zip(model.parameters(), before, strict=True):  # θ restored exactly after ±h v
        assert torch.equal(p, b)


class _OnceSquare(torch.autograd.Function):
    """x² with a backward that cannot be differentiated again."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return 2 * x * grad


@pytest.mark.parametrize("power", [1, 2])
def test_auto_mode_falls_back_to_finite_differences_when_double_backward_fails(power):
    # power 1: the gradient carries no graph at all; power 2: the double backward raises.
    c = torch.tensor([7.0, 3.0, 1.0], dtype=torch.float64)
    theta = torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64, requires_grad=True)

    def loss_fn():  # power 1: Σ c θ²/2; power 2: Σ c θ⁴/12. Both have H = diag(c) at θ = ±1.
        return (c * _OnceSquare.apply(theta) ** power).sum() / (2 if power == 1 else 12)

    _, mode = hvp_function(loss_fn, [theta])
    assert mode == "fd"
    wrong = hvp_function(loss_fn, [theta], mode="autograd")[0]([torch.ones(3, dtype=torch.float64)])
    assert torch.equal(wrong[0], torch.zeros(3, dtype=torch.float64))  # what forcing double backward gives
    assert lambda_max(loss_fn, [theta], tol=1e-10) == pytest.approx(7.0, rel=1e-6)
    assert hessian_trace(loss_fn, [theta]).trace == pytest.approx(11.0, rel=1e-6)


class _NoDoubleBackward(torch.autograd.Function):
    """x², whose backward raises under create_graph, like a fused kernel without a double backward."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad):
        if torch.is_grad_enabled():
            raise RuntimeError("derivative for fused_square_backward is not implemented")
        (x,) = ctx.saved_tensors
        return 2 * x * grad


def test_auto_mode_falls_back_when_double_backward_raises():
    c = torch.tensor([7.0, 3.0, 1.0], dtype=torch.float64)
    theta = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64, requires_grad=True)

    def loss_fn():
        return 0.5 * (c * _NoDoubleBackward.apply(theta)).sum()

    assert hvp_function(loss_fn, [theta])[1] == "fd"
    with pytest.raises(RuntimeError, match="not implemented"):
        hvp_function(loss_fn, [theta], mode="autograd")
    assert lambda_max(loss_fn, [theta], tol=1e-10) == pytest.approx(7.0, rel=1e-6)


def test_model_measured_in_eval_mode_and_modes_restored():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 1))
    model[1].eval()  # a submodule already in eval mode stays so
    x, y = torch.randn(32, 4), torch.randn(32, 1)

    def loss_fn():
        return nn.functional.mse_loss(model(x), y)

    rng = torch.get_rng_state()
    stats = model[1].running_mean.clone()
    first = lambda_max(loss_fn, model=model)
    assert lambda_max(loss_fn, model=model) == first  # dropout off: a fixed function
    assert hessian_trace(loss_fn, model=model, max_samples=50) == hessian_trace(loss_fn, model=model, max_samples=50)
    assert model.training and model[0].training and model[3].training and not model[1].training
    assert torch.equal(torch.get_rng_state(), rng)  # own generator: the global RNG is untouched
    assert torch.equal(model[1].running_mean, stats)
    assert all(p.grad is None for p in model.parameters())  # no .grad side effects


def test_grad_norm_and_zero_hessian():
    w = torch.tensor([3.0, 4.0], requires_grad=True)

    def linear():
        return (w * torch.tensor([3.0, 4.0])).sum()

    assert grad_norm(linear, [w]) == pytest.approx(5.0)
    assert lambda_max(linear, [w]) == 0.0
    assert hessian_trace(linear, [w]) == (0.0, 0.0, 10)


@pytest.mark.parametrize("g, lr, rho", [(1.0, 0.1, 0.05), (0.01, 0.5, 0.2), (30.0, 1e-3, 1.0), (2.5, 2.0, 1e-4)])
def test_sam_edge_equals_the_closed_form(g, lr, rho):
    closed = (g / (2 * rho)) * (math.sqrt(1 + 8 * rho / (lr * g)) - 1)  # loses digits to cancellation
    assert sam_edge(g, lr, rho) == pytest.approx(closed, rel=1e-9)
    assert sam_edge(torch.tensor(g, dtype=torch.float64), lr, rho) == pytest.approx(closed, rel=1e-9)
    assert sam_edge(g, lr, rho) < 2 / lr  # SAM's edge lies below GD's 2/η


def test_sam_edge_rho_zero_limit_is_two_over_lr():
    assert sam_edge(1.7, 0.1, 0.0) == 2 / 0.1
    for rho in (1e-4, 1e-8, 1e-12):  # edge = (2/η)(1 − 2ρ/(η‖g‖) + O(ρ²))
        assert sam_edge(1.7, 0.1, rho) == pytest.approx(20.0 * (1 - 2 * rho / (0.1 * 1.7)), rel=0.1 * rho + 1e-13)
        assert sam_edge(1.7, 0.1, rho) < 20.0
    assert sam_edge(0.0, 0.1, 0.05) == 0.0  # ‖g‖ → 0 with ρ > 0
    with pytest.raises(ValueError):
        sam_edge(1.0, 0.0, 0.1)
    with pytest.raises(ValueError):
        sam_edge(1.0, 0.1, -0.1)


def test_balancedness_on_known_tensors():
    pairs = [(torch.ones(2, 3), torch.full((3,), 2.0)),  # |6 - 12| = 6
             (torch.full((1, 1), 3.0), torch.zeros(4))]  # |9 - 0| = 9
    assert balancedness(pairs) == {"mean": 7.5, "max": 9.0}
    assert balancedness([(torch.ones(2), torch.ones(2))]) == {"mean": 0.0, "max": 0.0}
    with pytest.raises(ValueError):
        balancedness([])


def _mlp_and_exact_trace(seed: int = 0):
    """A small tanh MLP with cross-entropy, and Tr(H) from the full Hessian (torch.autograd.functional.hessian)."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 12), nn.Tanh(), nn.Linear(12, 3)).double()
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(48, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (48,), generator=g)
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def of_flat(v):
        params = dict(zip(names, torch.split(v, [math.prod(s) for s in shapes]), strict=True))
        params = {n: t.reshape(s) for (n, t), s in zip(params.items(), shapes, strict=True)}
        return nn.functional.cross_entropy(torch.func.functional_call(model, params, (x,)), y)

    exact = torch.autograd.functional.hessian(of_flat, flat).trace().item()
    return model, (lambda: nn.functional.cross_entropy(model(x), y)), exact


def test_hessian_trace_within_15_percent_for_every_seed_with_defaults():
    model, loss_fn, exact = _mlp_and_exact_trace()
    errors = []
    for seed in range(5):
        estimate = hessian_trace(loss_fn, model=model, seed=seed)
        errors.append((estimate.trace - exact) / exact)
        assert abs(estimate.trace - exact) < 0.15 * abs(exact), f"seed {seed}: {estimate} vs exact {exact:.4f}"
        assert abs(estimate.trace - exact) < 4 * estimate.stderr  # the standard error is honest
        assert estimate.stderr <= 0.05 * abs(estimate.trace) or estimate.samples == 1000
    print(f"\nexact Tr(H) = {exact:.4f}; relative errors over seeds 0-4: "
          + ", ".join(f"{e:+.3f}" for e in errors))


@pytest.mark.parametrize("method, hp, full_batch, applies", [
    ("sgd", {"momentum": 0.0}, True, True),  # GD: 2/η
    ("sam", {"momentum": 0.0}, True, True),
    ("sam", {"momentum": 0.0}, False, False),  # mini-batch
    ("sam", {"momentum": 0.9}, True, False),
    ("sam", {"base": "adamw"}, True, False),
    ("asam", {"momentum": 0.0}, True, False),
    ("fsam", {"momentum": 0.0}, True, False),
    ("sam", {"momentum": 0.0, "preconditioner": "ema_sq"}, True, False),
    ("sam", {"momentum": 0.0, "weight_decay": 1e-4}, True, False),
    ("sam_ire", {"momentum": 0.0}, True, False),
])
def test_sam_edge_applies_to_full_batch_momentum_free_gd_and_plain_sam_only(method, hp, full_batch, applies):
    from methods import build_optimizer
    from methods.diagnostics import sam_edge_applies

    opt = build_optimizer([nn.Parameter(torch.zeros(3))], method, **hp)
    why = sam_edge_applies(opt, full_batch=full_batch)
    assert (why is None) == applies, why
    assert sam_edge_applies(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1), full_batch=True) is not None


def test_scheduled_rho_is_the_radius_of_the_next_step():
    from methods import build_optimizer

    w = nn.Parameter(torch.ones(2))
    opt = build_optimizer([w], "sam", rho=0.2, rho_schedule="linear", total_steps=4, momentum=0.0)
    seen = []
    for _ in range(3):
        seen.append(opt.scheduled_rho())
        opt.step(lambda: ((w ** 2).sum(), None))
    assert seen == pytest.approx([0.2, 0.15, 0.1])
    assert build_optimizer([w], "sgd").scheduled_rho() == 0.0
