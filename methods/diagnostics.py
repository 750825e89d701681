"""Sharpness diagnostics (docs/METHODS.md, "Diagnostics"): balancedness, λ_max, Tr(H), the SAM edge.

Usable alone, on CPU or CUDA. Every curvature function takes `loss_fn`, a closure computing the loss
on ONE fixed evaluation batch (it may return `loss` or the optimizer's `(loss, outputs)`), and the
parameters to differentiate by:

    from methods.diagnostics import lambda_max, hessian_trace, sam_edge
    closure = lambda: loss_fn(model(x_eval), y_eval)
    lam = lambda_max(closure, model=model)            # power iteration on Hessian-vector products
    tr = hessian_trace(closure, model=model)          # Hutchinson: tr.trace ± tr.stderr
    ratio = lam / sam_edge(grad_norm(closure, model=model), lr=0.1, rho=0.05)

With `model=`, the model is put in eval mode for the measurement (dropout off, BatchNorm on its
running statistics) and every submodule's mode is restored afterwards. Hessian-vector products use
double backward; where that fails (an op without a second derivative) they fall back to central
finite differences of the gradient, (∇L(θ + h v) − ∇L(θ − h v)) / 2h with h = 1e-3 along the unit
direction of v. Random vectors come from a private generator: the global RNG is never touched.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

__all__ = ["Eigenpair", "TraceEstimate", "balancedness", "grad_norm", "hessian_trace", "hvp_function", "lambda_max",
           "sam_edge", "sam_edge_applies", "top_eigenpair"]

LossFn = Callable[[], Any]
HvpMode = str  # "auto" | "autograd" | "fd"
FD_STEP = 1e-3


# ---------------------------------------------------------------------------- balancedness
def balancedness(pairs: Iterable[tuple[Tensor, Tensor]]) -> dict[str, float]:
    """Mean and max over pairs of |D| = |‖x‖² − ‖y‖²| (for LoRA, x = B and y = A of one module)."""
    with torch.no_grad():
        gaps = [abs(float(x.detach().double().square().sum() - y.detach().double().square().sum()))
                for x, y in pairs]
    if not gaps:
        raise ValueError("balancedness needs at least one (x, y) pair")
    return {"mean": sum(gaps) / len(gaps), "max": max(gaps)}


# ---------------------------------------------------------------------------- SAM edge
def sam_edge(grad_norm: float | Tensor, lr: float, rho: float) -> float:
    """Long & Bartlett's SAM edge of stability: (‖g‖ / 2ρ)(√(1 + 8ρ / (η‖g‖)) − 1); 2/η when ρ = 0.

    Computed as the algebraically equal 4 / (η (1 + √(1 + 8ρ / (η‖g‖)))), which is exact at ρ = 0
    (2/η), stable for small ρ‖g‖, and tends to 0 as ‖g‖ → 0 with ρ > 0.
    """
    g, lr, rho = float(grad_norm), float(lr), float(rho)
    if not lr > 0 or not rho >= 0 or not g >= 0 or not all(map(math.isfinite, (g, lr, rho))):
        raise ValueError(f"sam_edge needs grad_norm >= 0, lr > 0, rho >= 0; got {g}, {lr}, {rho}")
    if rho == 0:
        return 2.0 / lr
    if g == 0:
        return 0.0
    return 4.0 / (lr * (1.0 + math.sqrt(1.0 + 8.0 * rho / (lr * g))))


def sam_edge_applies(optimizer: Any, *, full_batch: bool) -> str | None:
    """None when the SAM edge describes this run, else why it does not (a short sentence).

    The edge is derived for full-batch, momentum-free gradient descent with plain SAM (ρ > 0) or
    without a perturbation (GD: 2/η). Any other base, momentum (GD with momentum β sits near
    2(1+β)/η), weight decay, clipping, preconditioner, perturbation variant, balancer or IRE changes
    the dynamics it is derived from. `optimizer` is a `methods` optimizer (reads `.info`, `.hparams`).
    """
    info, hp = getattr(optimizer, "info", None), getattr(optimizer, "hparams", None)
    if info is None or hp is None:
        return "not a sharptune optimizer"
    preset = info.preset
    reasons = [
        (not full_batch, "mini-batch training"),
        (getattr(info, "plugin", False), f"method {info.name} is a plug-in (not a preset of the composable step)"),
        (hp.get("base") != "sgd", f"base {hp.get('base')}"),
        (hp.get("momentum", 0.0) != 0.0, f"momentum {hp.get('momentum')} (GD with momentum β sits near 2(1+β)/η)"),
        (preset.perturbation not in ("none", "sam"), f"perturbation {preset.perturbation}"),
        (hp.get("preconditioner", "none") != "none", f"preconditioner {hp.get('preconditioner')}"),
        (preset.perturb_scope != "all", "perturbation restricted to the LoRA pairs"),
        (preset.balancer != "none", f"balancer {preset.balancer}"),
        (preset.ire, "IRE boost"),
        (bool(hp.get("weight_decay")), f"weight decay {hp.get('weight_decay')}"),
        (hp.get("grad_clip") is not None, "gradient clipping"),
    ]
    found = [why for bad, why in reasons if bad]
    if not found:
        return None
    return f"{info.name}: " + ", ".join(found) + "; the SAM edge holds for full-batch, momentum-free GD/SAM only"


# ---------------------------------------------------------------------------- helpers
def _loss(loss_fn: LossFn) -> Tensor:
    result = loss_fn()
    loss = result[0] if isinstance(result, tuple) else result
    if not isinstance(loss, Tensor) or loss.numel() != 1:
        raise ValueError("loss_fn must return a scalar loss tensor (or (loss, outputs))")
    return loss.reshape(())


def _params(params: Iterable[Tensor] | None, model: nn.Module | None) -> list[Tensor]:
    if params is None:
        if model is None:
            raise ValueError("pass params, model, or both")
        params = model.parameters()
    out = [p for p in params if p.requires_grad]
    if not out:
        raise ValueError("no parameters that require grad")
    return out


@contextmanager
def _eval_mode(model: nn.Module | None) -> Iterator[None]:
    """Eval mode inside; each submodule's own training flag restored afterwards."""
    if model is None:
        yield
        return
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, mode in modes:
            m.training = mode


def _dot(a: Sequence[Tensor], b: Sequence[Tensor]) -> float:
    return float(sum((x.double() * y.double()).sum() for x, y in zip(a, b, strict=True)))


def _norm(a: Sequence[Tensor]) -> float:
    return math.sqrt(_dot(a, a))


def _gradient(loss_fn: LossFn, params: Sequence[Tensor]) -> list[Tensor]:
    with torch.enable_grad():
        grads = torch.autograd.grad(_loss(loss_fn), list(params), allow_unused=True, materialize_grads=True)
    return [g.detach() for g in grads]


def grad_norm(loss_fn: LossFn, params: Iterable[Tensor] | None = None, *, model: nn.Module | None = None) -> float:
    """Global L2 norm of ∇L on the fixed batch (the ‖g‖ that `sam_edge` takes), in eval mode with `model`."""
    params = _params(params, model)
    with _eval_mode(model):
        return _norm(_gradient(loss_fn, params))


def _fd_hvp(loss_fn: LossFn, params: Sequence[Tensor], v: Sequence[Tensor], step: float) -> list[Tensor]:
    """H v ≈ ‖v‖ (∇L(θ + h v̂) − ∇L(θ − h v̂)) / 2h with v̂ = v / ‖v‖; θ restored exactly."""
    norm = _norm(v)
    if norm == 0:
        return [torch.zeros_like(p) for p in params]
    unit = [t / norm for t in v]
    saved = [p.detach().clone() for p in params]
    try:
        with torch.no_grad():
            torch._foreach_add_(list(params), unit, alpha=step)
        plus = _gradient(loss_fn, params)
        with torch.no_grad():
            torch._foreach_add_(list(params), unit, alpha=-2 * step)
        minus = _gradient(loss_fn, params)
    finally:
        with torch.no_grad():
            torch._foreach_copy_(list(params), saved)
    return [(a - b) * (norm / (2 * step)) for a, b in zip(plus, minus, strict=True)]


def hvp_function(loss_fn: LossFn, params: Sequence[Tensor], *, mode: HvpMode = "auto",
                 fd_step: float = FD_STEP) -> tuple[Callable[[Sequence[Tensor]], list[Tensor]], str]:
    """A function v ↦ H v at the current θ, and the mode it uses ("autograd" or "fd").

    "autograd" builds the gradient graph once (one forward + backward) and reuses it for every
    product (one double backward each); "fd" costs two gradients per product; "auto" tries
    double backward and falls back to "fd" when it raises or the gradient carries no graph.
    """
    if mode not in ("auto", "autograd", "fd"):
        raise ValueError(f"mode must be one of auto, autograd, fd; got {mode!r}")
    params = list(params)

    def fd(v: Sequence[Tensor]) -> list[Tensor]:
        return _fd_hvp(loss_fn, params, v, fd_step)

    if mode == "fd":
        return fd, "fd"
    try:
        with torch.enable_grad():
            grads = torch.autograd.grad(_loss(loss_fn), params, create_graph=True, allow_unused=True,
                                        materialize_grads=True)
    except RuntimeError:
        if mode == "autograd":
            raise
        return fd, "fd"
    linked = [i for i, g in enumerate(grads) if g.requires_grad]

    def autograd(v: Sequence[Tensor]) -> list[Tensor]:
        out = [torch.zeros_like(p) for p in params]
        if linked:
            products = torch.autograd.grad([grads[i] for i in linked], params, [v[i] for i in linked],
                                           retain_graph=True, allow_unused=True, materialize_grads=True)
            out = [h.detach() for h in products]
        return out

    if mode == "autograd":
        return autograd, "autograd"
    if not linked or _cut_graph([grads[i] for i in linked]):
        return fd, "fd"  # no second-order graph, or one that silently drops a path (once_differentiable)
    try:
        autograd([torch.ones_like(p) for p in params])
    except RuntimeError:  # e.g. a fused kernel without a double backward
        return fd, "fd"
    return autograd, "autograd"


def _cut_graph(grads: Sequence[Tensor]) -> bool:
    """Whether the gradients' graph holds a node that cannot be differentiated again.

    A `@once_differentiable` backward under create_graph returns its result through an `Error` node
    that is not connected to the parameters: double backward then skips it and silently returns a
    Hessian without that path, instead of raising.
    """
    seen: set[Any] = set()
    stack = [g.grad_fn for g in grads]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if node.name() == "torch::autograd::Error":
            return True
        stack.extend(next_node for next_node, _ in node.next_functions)
    return False


def _random(params: Sequence[Tensor], generator: torch.Generator, rademacher: bool) -> list[Tensor]:
    out = []
    for p in params:
        if rademacher:
            t = torch.randint(0, 2, p.shape, generator=generator).to(p.dtype).mul_(2).sub_(1)
        else:
            t = torch.randn(p.shape, generator=generator, dtype=p.dtype if p.is_floating_point() else None)
        out.append(t.to(p.device))
    return out


# ---------------------------------------------------------------------------- λ_max and Tr(H)
def lambda_max(loss_fn: LossFn, params: Iterable[Tensor] | None = None, *, model: nn.Module | None = None,
               tol: float = 1e-3, max_iter: int = 100, seed: int = 0, mode: HvpMode = "auto",
               fd_step: float = FD_STEP) -> float:
    """Largest-magnitude Hessian eigenvalue of the loss on the fixed batch, by power iteration.

    Starts from a seeded Gaussian vector; each iteration takes w = H v, the Rayleigh quotient
    λ = vᵀ w and v ← w / ‖w‖; stops when |λ − λ_prev| < tol · |λ| or after `max_iter` products.
    Returns 0.0 when H v vanishes.
    """
    return top_eigenpair(loss_fn, params, model=model, tol=tol, max_iter=max_iter, seed=seed, mode=mode,
                         fd_step=fd_step).value


class Eigenpair(NamedTuple):
    """λ_max, its unit eigenvector (detached, one tensor per parameter) and the Hessian-vector products spent."""

    value: float
    vector: list[Tensor]
    products: int


def top_eigenpair(loss_fn: LossFn, params: Iterable[Tensor] | None = None, *, model: nn.Module | None = None,
                  start: Sequence[Tensor] | None = None, tol: float = 1e-3, max_iter: int = 100, seed: int = 0,
                  mode: HvpMode = "auto", fd_step: float = FD_STEP) -> Eigenpair:
    """`lambda_max` with its eigenvector; `start` (an earlier call's vector) warm-starts the iteration.

    Along training the top eigenvector moves, less the closer the calls: starting from the last one
    saves more products the less it moved (on the MNIST MLP, calls 200 SAM steps apart: 15 % fewer).
    The start is mixed with 10 % of the seeded random vector so that no direction is missing from it;
    the stopping rule is `lambda_max`'s.
    """
    params = _params(params, model)
    generator = torch.Generator().manual_seed(seed)
    with _eval_mode(model):
        hvp, _ = hvp_function(loss_fn, params, mode=mode, fd_step=fd_step)
        v = _random(params, generator, rademacher=False)
        if start is not None and len(start) == len(params) and all(
                s.shape == p.shape for s, p in zip(start, params, strict=True)):
            scale = 0.1 / _norm(v)
            v = [s.to(t) + scale * t for s, t in zip(start, v, strict=True)]
        norm = _norm(v)
        v = [t / norm for t in v]
        previous = None
        value, products = 0.0, 0
        for _ in range(max_iter):
            w = hvp(v)
            products += 1
            value = _dot(v, w)
            w_norm = _norm(w)
            if w_norm == 0:
                return Eigenpair(0.0, [t.detach() for t in v], products)
            v = [t / w_norm for t in w]
            if previous is not None and abs(value - previous) < tol * abs(value):
                break
            previous = value
    return Eigenpair(value, [t.detach() for t in v], products)


class TraceEstimate(NamedTuple):
    """Hutchinson's estimate of Tr(H): the mean of vᵀ H v, its standard error s / √n, and n."""

    trace: float
    stderr: float
    samples: int


def hessian_trace(loss_fn: LossFn, params: Iterable[Tensor] | None = None, *, model: nn.Module | None = None,
                  rtol: float = 0.05, min_samples: int = 10, max_samples: int = 1000, seed: int = 0,
                  mode: HvpMode = "auto", fd_step: float = FD_STEP) -> TraceEstimate:
    """Tr(H) by Hutchinson's estimator: the mean of vᵀ H v over Rademacher vectors v, with its standard error.

    Stops on the standard error, not on the change of the running mean (which stops after a handful of
    samples): after at least `min_samples` samples, once s / √n ≤ rtol · |mean| (s the sample standard
    deviation), or after `max_samples`. `rtol = 0` with `min_samples = max_samples` is a fixed count.
    The default puts the estimate within 3 standard errors, 15 %, of Tr(H).
    """
    if not 1 <= min_samples <= max_samples or rtol < 0:
        raise ValueError(f"need 1 <= min_samples <= max_samples and rtol >= 0; got {min_samples}, {max_samples}, "
                         f"{rtol}")
    params = _params(params, model)
    generator = torch.Generator().manual_seed(seed)
    samples: list[float] = []
    with _eval_mode(model):
        hvp, _ = hvp_function(loss_fn, params, mode=mode, fd_step=fd_step)
        while len(samples) < max_samples:
            v = _random(params, generator, rademacher=True)
            samples.append(_dot(v, hvp(v)))
            if len(samples) >= min_samples and _stderr(samples) <= rtol * abs(math.fsum(samples) / len(samples)):
                break
    return TraceEstimate(math.fsum(samples) / len(samples), _stderr(samples), len(samples))


def _stderr(samples: Sequence[float]) -> float:
    """s / √n with the unbiased sample variance; 0 for a single sample."""
    n = len(samples)
    if n < 2:
        return 0.0
    mean = math.fsum(samples) / n
    return math.sqrt(math.fsum((x - mean) ** 2 for x in samples) / (n - 1) / n)
