"""methods.diagnostics against quantities known in closed form (METHODS.md, "Diagnostics")."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.autograd.function import once_differentiable

from methods.diagnostics import balancedness, grad_norm, hessian_trace, hvp_function, lambda_max, sam_edge

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


def test_lambda_max_accepts_closure_returning_loss_and_outputs():
    loss_fn, params = _quadratic(_spd([3.0, 1.0, 1.0, 0.5, 0.2, 0.1]))
    assert lambda_max(lambda: (loss_fn(), None), params, tol=1e-12) == pytest.approx(3.0, rel=1e-9)


@pytest.mark.parametrize("device", DEVICES)
def test_hessian_trace_is_exact_for_a_diagonal_hessian(device):
    # For diagonal H, vᵀHv = Σ H_ii v_i² = Tr(H) for every Rademacher v.
    diag = [4.0, 3.0, 0.5, 0.25, -1.0, 2.0]
    loss_fn, params = _quadratic(torch.diag(torch.tensor(diag, dtype=torch.float64)), device)
    assert hessian_trace(loss_fn, params) == pytest.approx(sum(diag), rel=1e-12)


def test_hessian_trace_estimates_a_dense_hessian():
    h = _spd([5.0, 2.0, 1.0, 0.5, 0.1, 0.0])
    loss_fn, params = _quadratic(h)
    off = (h - torch.diag(torch.diag(h))).square().sum().item()
    std_100 = math.sqrt(2 * off / 100)  # Hutchinson's standard deviation after 100 samples
    estimate = hessian_trace(loss_fn, params, tol=0.0)  # tol 0: all 100 samples
    assert abs(estimate - 8.6) < 3 * std_100


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
    assert hessian_trace(loss_fn, model=model, mode="fd", tol=0.0, max_samples=10) == pytest.approx(
        hessian_trace(loss_fn, model=model, tol=0.0, max_samples=10), rel=1e-5)
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
    assert hessian_trace(loss_fn, [theta]) == pytest.approx(11.0, rel=1e-6)


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
    assert hessian_trace(loss_fn, model=model) == hessian_trace(loss_fn, model=model)
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
    assert hessian_trace(linear, [w]) == 0.0


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
