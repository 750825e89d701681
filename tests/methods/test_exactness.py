"""SAM, ASAM, Functional-SAM and preconditioned SAM equal a hand-written computation of docs/METHODS.md.

Each reference below is written from the formulas in docs/METHODS.md ("Perturbation (SAM family)"), in float64
with torch.func.functional_call, independently of the optimizer's code; two steps each, so the base
optimizer's state (momentum, AdamW moments, the preconditioner's v̂) enters the second step.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.func import functional_call

from methods import build_optimizer

NORM_EPS = 1e-12
TOL = {"rtol": 1e-12, "atol": 1e-14}


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()


def _batches():
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(16, 4, generator=g, dtype=torch.float64), torch.randint(0, 3, (16,), generator=g))
            for _ in range(2)]


def _closure(model, x, y):
    def closure():
        logits = model(x)
        return nn.functional.cross_entropy(logits, y), logits
    return closure


def _loss(model, params, x, y):
    return nn.functional.cross_entropy(functional_call(model, params, (x,)), y)


def _grad(model, params, x, y):
    names = list(params)
    grads = torch.autograd.grad(_loss(model, params, x, y), [params[n] for n in names])
    return dict(zip(names, grads, strict=True))


def _leaf(params):
    return {n: p.detach().clone().requires_grad_() for n, p in params.items()}


def _norm(tensors):
    return torch.sqrt(sum((t * t).sum() for t in tensors))


def _perturbed_grad(model, theta, x, y, kind, rho, eta=0.01, precond=None, precond_eps=1e-8, scope="weights"):
    """g̃ of docs/METHODS.md steps 1-3 for perturbation `kind`; `precond` is v̂ (None: identity).

    ASAM: T = |θ| + eta on the tensors named *weight* (scope "weights") or on all of them ("all"), 1 elsewhere.
    """
    g = _grad(model, theta, x, y)
    if kind == "asam":
        t = {n: theta[n].detach().abs() + eta if scope == "all" or "weight" in n else torch.ones_like(theta[n])
             for n in theta}
        eps = {n: rho * t[n] ** 2 * g[n] / (_norm([t[k] * g[k] for k in g]) + NORM_EPS) for n in g}
    else:
        d = g if precond is None else {n: g[n] / (precond[n].sqrt() + precond_eps) for n in g}
        eps = {n: rho * d[n] / (_norm(d.values()) + NORM_EPS) for n in g}
    shifted = _leaf({n: theta[n].detach() + eps[n] for n in theta})
    if kind != "functional":
        return _grad(model, shifted, x, y)
    # Functional-SAM: J(θ+ε)ᵀ · ∂ℓ/∂z(θ)
    z = functional_call(model, theta, (x,))
    cotangent = torch.autograd.grad(nn.functional.cross_entropy(z, y), z)[0]
    z_shift = functional_call(model, shifted, (x,))
    names = list(shifted)
    grads = torch.autograd.grad(z_shift, [shifted[n] for n in names], cotangent)
    return dict(zip(names, grads, strict=True))


def _run(method, model, batches, **hp):
    opt = build_optimizer(model, method, **hp)
    for x, y in batches:
        opt.step(_closure(model, x, y))
    return dict(model.named_parameters())


@pytest.mark.parametrize("kind, method, extra", [
    ("sam", "sam", {}),
    ("asam", "asam", {}),  # official: weights only, eta 0.01
    ("asam", "asam", {"asam_eta": 0.1}),
    ("asam", "asam", {"asam_scope": "all", "asam_eta": 0.0}),  # davda54
    ("asam", "asam", {"asam_scope": "all", "asam_eta": 0.01}),
    ("functional", "fsam", {}),
])
def test_sgd_based_update_equals_the_formula(kind, method, extra):
    lr, rho, momentum, wd = 0.1, 0.07, 0.9, 1e-3
    model = _net()
    reference = copy.deepcopy(model)
    got = _run(method, model, _batches(), lr=lr, rho=rho, momentum=momentum, weight_decay=wd, **extra)

    theta = _leaf(dict(reference.named_parameters()))
    buffer = None
    for x, y in _batches():
        g_tilde = _perturbed_grad(reference, theta, x, y, kind, rho, eta=extra.get("asam_eta", 0.01),
                                  scope=extra.get("asam_scope", "weights"))
        d = {n: g_tilde[n] + wd * theta[n].detach() for n in theta}  # SGD's L2 decay, never perturbed
        buffer = d if buffer is None else {n: momentum * buffer[n] + d[n] for n in d}
        theta = _leaf({n: theta[n].detach() - lr * buffer[n] for n in theta})
    for n in theta:
        torch.testing.assert_close(got[n].detach(), theta[n].detach(), **TOL)


@pytest.mark.parametrize("method, kind", [("psam", "sam"), ("pfsam", "functional")])
def test_preconditioned_update_with_adamw_equals_the_formula(method, kind):
    lr, rho, wd, betas, eps = 0.01, 0.05, 0.1, (0.9, 0.999), 1e-8
    model = _net()
    reference = copy.deepcopy(model)
    got = _run(method, model, _batches(), lr=lr, rho=rho, weight_decay=wd, betas=betas, eps=eps)

    theta = _leaf(dict(reference.named_parameters()))
    m = {n: torch.zeros_like(p) for n, p in theta.items()}
    v = {n: torch.zeros_like(p) for n, p in theta.items()}
    for t, (x, y) in enumerate(_batches(), start=1):
        # P = diag(√v̂ + eps) from the previous base step; the identity before any step
        v_hat_prev = None if t == 1 else {n: v[n] / (1 - betas[1] ** (t - 1)) for n in v}
        g_tilde = _perturbed_grad(reference, theta, x, y, kind, rho, precond=v_hat_prev)
        new = {}
        for n in theta:
            m[n] = betas[0] * m[n] + (1 - betas[0]) * g_tilde[n]
            v[n] = betas[1] * v[n] + (1 - betas[1]) * g_tilde[n] ** 2
            m_hat, v_hat = m[n] / (1 - betas[0] ** t), v[n] / (1 - betas[1] ** t)
            new[n] = theta[n].detach() * (1 - lr * wd) - lr * m_hat / (v_hat.sqrt() + eps)
        theta = _leaf(new)
    for n in theta:
        torch.testing.assert_close(got[n].detach(), theta[n].detach(), **TOL)


def test_ema_sq_preconditioner_with_sgd_equals_the_formula():
    lr, rho, beta, peps = 0.1, 0.05, 0.9, 1e-8
    model = _net()
    reference = copy.deepcopy(model)
    got = _run("sam", model, _batches() * 2, lr=lr, rho=rho, momentum=0.0, preconditioner="ema_sq",
               precond_beta=beta, precond_eps=peps)
    theta = _leaf(dict(reference.named_parameters()))
    ema = {n: torch.zeros_like(p) for n, p in theta.items()}
    for t, (x, y) in enumerate(_batches() * 2, start=1):  # four steps: the EMA of two squares enters
        g = _grad(reference, theta, x, y)
        # P from the EMA of the previous steps' g² (identity at the first step); this step's g² joins after
        v_hat = None if t == 1 else {n: ema[n] / (1 - beta ** (t - 1)) for n in ema}
        g_tilde = _perturbed_grad(reference, theta, x, y, "sam", rho, precond=v_hat, precond_eps=peps)
        ema = {n: beta * ema[n] + (1 - beta) * g[n] ** 2 for n in g}
        theta = _leaf({n: theta[n].detach() - lr * g_tilde[n] for n in theta})
    for n in theta:
        torch.testing.assert_close(got[n].detach(), theta[n].detach(), **TOL)


def test_batchnorm_running_stats_move_in_the_first_pass_only():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3)).double()
    x, y = _batches()[0]
    expected = copy.deepcopy(model)
    expected(x)  # one training-mode forward at θ: the first pass
    for method in ("sam", "asam", "fsam", "sam_ire"):
        trial = copy.deepcopy(model)
        opt = build_optimizer(trial, method, rho=0.5)
        opt.step(_closure(trial, x, y))
        assert opt.counts["fwd"] >= 2
        bn, ref = trial[1], expected[1]
        torch.testing.assert_close(bn.running_mean, ref.running_mean, rtol=0, atol=0)
        torch.testing.assert_close(bn.running_var, ref.running_var, rtol=0, atol=0)
        assert int(bn.num_batches_tracked) == 1
        assert trial[1].momentum == model[1].momentum  # restored after the extra passes


def test_dropout_mask_is_replayed_so_rho_zero_sam_is_sgd():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 3)).double()
    twin = copy.deepcopy(model)
    x, y = _batches()[0]
    torch.manual_seed(5)
    sam = build_optimizer(model, "sam", rho=0.0, lr=0.1)
    for _ in range(3):
        sam.step(_closure(model, x, y))
    torch.manual_seed(5)
    sgd = build_optimizer(twin, "sgd", lr=0.1)
    for _ in range(3):
        sgd.step(_closure(twin, x, y))
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(a, b, **TOL)


@pytest.mark.parametrize("norm", ["global", "pair"])
@pytest.mark.parametrize("method", ["obar", "nbar"])
def test_drift_balancer_step_equals_the_formula(method, norm):
    """`bar_rule: drift` (ours; docs/METHODS.md, "Balancer", last paragraph): c from the gradient before the
    step, ‖g‖ global (a bias z outside the pair counts) or the pair's own; x ← (1 + ηc) x, y ← (1 − ηc) y, then
    the base step."""
    lr, mu0 = 0.05, 0.3
    torch.manual_seed(0)
    x = nn.Parameter(torch.randn(5, 2, dtype=torch.float64))
    y = nn.Parameter(0.3 * torch.randn(2, 4, dtype=torch.float64))
    z = nn.Parameter(torch.randn(4, dtype=torch.float64))
    target = torch.randn(5, 4, dtype=torch.float64)
    refs = [x.detach().clone(), y.detach().clone(), z.detach().clone()]
    opt = build_optimizer([x, y, z], method, pairs=[(x, y)], base="sgd", lr=lr, momentum=0.0, mu0=mu0,
                          schedule="linear", total_steps=4, bar_rule="drift", bar_norm=norm)

    def loss(x_, y_, z_):
        return 0.5 * (x_ @ y_ + z_ - target).square().sum()

    for t in range(2):
        opt.step(lambda: (loss(x, y, z), None))
        leaves = [r.clone().requires_grad_() for r in refs]
        gx, gy, gz = torch.autograd.grad(loss(*leaves), leaves)
        mu = mu0 * (1 - t / 4)  # linear schedule
        sx, sy = refs[0].square().sum(), refs[1].square().sum()
        gx2, gy2 = gx.square().sum(), gy.square().sum()
        g_norm = torch.sqrt(gx2 + gy2 + (gz.square().sum() if norm == "global" else 0.0))
        if method == "obar":
            c = -mu * g_norm * (sx - sy) / (sx + sy) ** 2
        else:
            c = mu * (gx2 - gy2) / (g_norm * (sx + sy))
        # balance with the gradient taken before it, then the base step with that same gradient
        refs = [(1 + lr * c) * refs[0] - lr * gx, (1 - lr * c) * refs[1] - lr * gy, refs[2] - lr * gz]
        for got, ref in zip((x, y, z), refs, strict=True):
            torch.testing.assert_close(got.detach(), ref, rtol=1e-10, atol=1e-12)


def test_ire_step_equals_the_formula():
    lr, kappa, gamma = 0.1, 3.0, 0.5
    torch.manual_seed(0)
    w = nn.Parameter(torch.randn(6, dtype=torch.float64))
    b = nn.Parameter(torch.randn(4, dtype=torch.float64))
    scale = torch.tensor([3.0, 0.1, 2.0, 0.5, 1.0, 0.2], dtype=torch.float64)
    ref_w, ref_b = w.detach().clone(), b.detach().clone()

    def loss(w_, b_):
        return 0.5 * (scale * w_ ** 2).sum() + 0.25 * (b_ ** 4).sum()

    opt = build_optimizer([w, b], "sgd_ire", lr=lr, momentum=0.0, kappa=kappa, gamma=gamma, ire_interval=3,
                          curvature="grad_sq")
    mask = None
    for t in range(5):
        opt.step(lambda: (loss(w, b), None))
        wr, br = ref_w.clone().requires_grad_(), ref_b.clone().requires_grad_()
        gw, gb = torch.autograd.grad(loss(wr, br), [wr, br])
        if t % 3 == 0:  # every K = 3 steps: the round(γ p) = 5 coordinates of smallest g², one global threshold
            h = torch.cat([gw, gb]) ** 2
            chosen = torch.zeros(10, dtype=torch.float64)
            chosen[torch.argsort(h, stable=True)[:5]] = 1.0
            mask = chosen
        delta = -lr * torch.cat([gw, gb])
        new = torch.cat([ref_w, ref_b]) + delta + kappa * mask * delta
        ref_w, ref_b = new[:6], new[6:]
        torch.testing.assert_close(torch.cat([w, b]).detach(), new, rtol=1e-12, atol=1e-14)


def test_ire_mask_takes_exactly_round_gamma_p_coordinates_ties_by_position():
    """docs/METHODS.md: exactly round(γ·p) smallest-curvature coordinates, one global threshold, ties by position."""
    from methods._selection import flat_mask

    curvature = [torch.tensor([[0.5, 0.1], [0.1, 0.1]]), torch.tensor([0.1, 0.1, 0.9])]  # p = 7, five ties at 0.1
    masks = flat_mask(curvature, gamma=3 / 7)  # round(3) = 3 of the five tied coordinates: the first three
    assert [m.tolist() for m in masks] == [[[False, True], [True, True]], [False, False, False]]
    masks = flat_mask(curvature, gamma=6 / 7)  # all ties, then the next smallest (0.5)
    assert [m.tolist() for m in masks] == [[[True, True], [True, True]], [True, True, False]]


@pytest.mark.parametrize("kind", ["squares", "many_zeros", "sorted", "reversed", "nans", "constant", "two_values"])
def test_ire_host_selection_is_exactly_numpys_partition(kind: str) -> None:
    """The bracketed selection that IRE's mask uses on the host returns np.partition's k-th value, ties,
    NaNs and sorted inputs included: the sample only decides how fast, never what."""
    import numpy as np

    from methods._selection import BRACKET_MIN, _kth_smallest_host

    rng = np.random.default_rng(0)
    n = 4 * BRACKET_MIN + 17
    values = {
        "squares": rng.standard_normal(n) ** 2,
        "many_zeros": np.where(rng.random(n) < 0.3, 0.0, rng.random(n)),  # dead units: exact zero curvature
        "sorted": np.sort(rng.random(n)),
        "reversed": np.sort(rng.random(n))[::-1].copy(),
        "nans": np.where(rng.random(n) < 0.1, np.nan, rng.random(n)),
        "constant": np.ones(n),
        "two_values": np.where(np.arange(n) % 7 == 0, 2.0, 1.0),
    }[kind].astype(np.float32)
    for k in (1, 2, n // 7, n // 2, int(0.8 * n), n - 1, n):
        expected = float(np.partition(values, k - 1)[k - 1])
        got = _kth_smallest_host(values, k)
        assert got == expected or (np.isnan(got) and np.isnan(expected)), (kind, k, got, expected)


def test_ire_mask_on_a_large_model_takes_exactly_round_gamma_p_smallest() -> None:
    """Above the size where the host selection brackets, the mask is still the round(γ·p) smallest."""
    from methods._selection import BRACKET_MIN, flat_mask

    torch.manual_seed(0)
    curvature = [torch.rand(300, 200) ** 2, torch.zeros(BRACKET_MIN), torch.rand(777)]  # one block of ties at 0
    gamma = 0.6
    masks = flat_mask(curvature, gamma)
    flat = torch.cat([h.reshape(-1) for h in curvature])
    count = int(gamma * flat.numel() + 0.5)
    expected = torch.zeros(flat.numel(), dtype=torch.bool)
    expected[torch.argsort(flat, stable=True)[:count]] = True
    assert torch.equal(torch.cat([m.reshape(-1) for m in masks]), expected)


def test_ire_fisher_pass_through_the_steps_forward_equals_a_replayed_forward() -> None:
    """Without a perturbation IRE's Fisher pass is a second backward through the step's own forward;
    it must give exactly what a replayed forward (same RNG: dropout) with the same sampled labels gives."""
    from methods._replay import RngSnapshot

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 4))
    x, y = torch.randn(32, 5), torch.randint(0, 4, (32,))
    opt = build_optimizer(model, "admire")

    def closure():
        logits = model(x)
        return nn.functional.cross_entropy(logits, y), logits

    rng = RngSnapshot(())
    _, outputs, grads = opt.passes.loss_grads(closure, keep_graph=True)
    labels_state = opt.passes.generator.get_state()
    reused = opt.passes.fisher_squares(closure, None, "test", outputs)
    opt.passes.generator.set_state(labels_state)
    replayed = opt.passes.fisher_squares(closure, rng, "test")
    assert all(torch.equal(a, b) for a, b in zip(reused, replayed, strict=True))
    assert any(not torch.equal(a, g * g) for a, g in zip(reused, grads, strict=True))  # sampled labels, not y
    assert opt.counts["fwd"] == 2 and opt.counts["grad_evals"] == 3


def _train_ire(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, steps: int,
               fast: bool, monkeypatch: pytest.MonkeyPatch, lr_decay: float = 1.0) -> None:
    """`steps` IRE steps on (x, y); `fast=False` forces the copy-and-lerp boost (no momentum-buffer boost,
    no fused step); each group's lr is multiplied by `lr_decay` after every step."""
    import methods._fused as optimizer_module

    def closure():
        logits = model(x)
        return nn.functional.cross_entropy(logits, y), logits

    with monkeypatch.context() as patch:
        if not fast:
            patch.setattr(optimizer_module, "heavy_ball_directions", lambda base, params: None)
            patch.setattr(optimizer_module, "adamw_states", lambda base, params: None)
        for _ in range(steps):
            opt.step(closure)
            for group in opt.param_groups:
                group["lr"] *= lr_decay


@pytest.mark.parametrize(("hp", "lr_decay", "path"), [
    ({"momentum": 0.9}, 0.9, "fused"), ({"momentum": 0.5, "weight_decay": 0.01}, 0.9, "fused"),
    ({"momentum": 0.9, "nesterov": True}, 0.9, "copy"), ({"momentum": 0.0}, 0.9, "copy"),
    ({"momentum": 0.9, "kappa_decay": True}, 0.9, "buffer"), ({"momentum": 0.9, "kappa_decay": True}, 1.0, "fused")])
def test_ire_boost_from_the_momentum_buffer_equals_the_boost_from_a_copy_of_theta(hp, lr_decay, path,
                                                                                 monkeypatch) -> None:
    """With heavy-ball SGD, IRE boosts from the momentum buffer (Δ = −lr·b) instead of θ_new − θ_old:
    fused with SGD's own step into θ − lr·(1 + κ·mask) ⊙ b while κ holds, or after torch's step while κ_t
    moves (kappa_decay under a decaying lr). Every path must give the trajectory of torch's SGD step
    followed by the copy-and-lerp boost, across mask re-estimates, with two lr groups, one of them
    with dampening."""
    import methods._fused as optimizer_module

    def run(heavy_ball: bool) -> tuple[list[torch.Tensor], set[str]]:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).double()
        x, y = torch.randn(40, 5, dtype=torch.float64), torch.randint(0, 3, (40,))
        groups = [{"params": model[0].parameters()}, {"params": model[2].parameters(), "lr": 0.05, "dampening": 0.3}]
        opt = build_optimizer(groups, "sgd_ire", lr=0.1, kappa=1.5, gamma=0.6, ire_interval=4, **hp)
        used = set()
        with monkeypatch.context() as patch:  # this run's spies only
            for name, label in (("boosted_heavy_ball_step", "fused"), ("boost_along", "buffer"), ("boost", "copy")):
                original = getattr(optimizer_module, name)
                patch.setattr(optimizer_module, name, lambda *a, _f=original, _l=label: used.add(_l) or _f(*a))
            _train_ire(model, opt, x, y, 15, heavy_ball, monkeypatch, lr_decay=lr_decay)
        return [p.detach().clone() for p in model.parameters()], used

    (fast, paths), (copied, _) = run(True), run(False)
    assert paths - {"copy"} == ({path} - {"copy"})  # the first boost has no buffer yet: it copies
    for a, b in zip(fast, copied, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(("hp", "group", "lr_decay", "path"), [
    ({}, {}, 0.9, "fused"), ({"weight_decay": 0.1, "betas": (0.8, 0.95), "eps": 1e-6}, {}, 0.9, "fused"),
    ({"weight_decay": 0.1}, {"amsgrad": True}, 0.9, "copy"),
    ({"kappa_decay": True}, {}, 0.9, "copy"), ({"kappa_decay": True}, {}, 1.0, "fused")])
def test_admire_fused_adamw_step_equals_torchs_adamw_then_the_copy_boost(hp, group, lr_decay, path,
                                                                      monkeypatch) -> None:
    """AdmIRE fuses AdamW's step and the boost into θ + (1 + κ·mask) ⊙ Δ while κ holds and the AdamW
    variant is plain (no amsgrad). Every path must give the trajectory of torch's AdamW step followed by
    the copy-and-lerp boost, across mask re-estimates, with two groups of their own lr, betas and weight
    decay; and torch's state (step counts, moments) must be what torch's own steps leave."""
    import methods._fused as optimizer_module

    def run(fast: bool) -> tuple[list[torch.Tensor], list[torch.Tensor], set[str]]:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).double()
        x, y = torch.randn(40, 5, dtype=torch.float64), torch.randint(0, 3, (40,))
        groups = [{"params": model[0].parameters()},
                  {"params": model[2].parameters(), "lr": 0.02, "betas": (0.5, 0.9), "weight_decay": 0.3, **group}]
        opt = build_optimizer(groups, "admire", lr=0.01, kappa=1.5, gamma=0.6, ire_interval=4, total_steps=30,
                              **hp)
        used = set()
        with monkeypatch.context() as patch:  # this run's spies only
            for name, label in (("boosted_adamw_step", "fused"), ("boost", "copy")):
                original = getattr(optimizer_module, name)
                patch.setattr(optimizer_module, name, lambda *a, _f=original, _l=label: used.add(_l) or _f(*a))
            _train_ire(model, opt, x, y, 25, fast, monkeypatch, lr_decay=lr_decay)
        state = [t for p in model.parameters() for t in opt.base.state[p].values()]
        return [p.detach().clone() for p in model.parameters()], state, used

    (fast, fast_state, paths), (copied, copied_state, _) = run(True), run(False)
    assert paths == {path}
    for a, b in zip(fast + fast_state, copied + copied_state, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_sampled_labels_follow_the_predicted_distribution_and_the_generator() -> None:
    """Fisher passes draw labels by inverse CDF: each row's frequencies match its probabilities, a
    zero-probability class is never drawn, and the same generator state gives the same labels."""
    from methods._replay import sample_labels

    probs = torch.tensor([[0.0, 0.2, 0.0, 0.5, 0.3], [1.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 1.0]])
    rows = probs.repeat(40_000, 1).view(40_000, 3, 5)  # extra leading axes, as an LM's (batch, tokens, vocab)
    labels = sample_labels(rows, torch.Generator().manual_seed(0))
    assert labels.shape == (40_000, 3)
    for r in range(3):
        freq = torch.bincount(labels[:, r], minlength=5).double() / 40_000
        assert torch.all(freq[probs[r] == 0] == 0)
        torch.testing.assert_close(freq, probs[r].double(), atol=0.01, rtol=0)  # 4 standard errors at most
    again = sample_labels(rows, torch.Generator().manual_seed(0))
    assert torch.equal(labels, again)
    assert not torch.equal(labels, sample_labels(rows, torch.Generator().manual_seed(1)))


def test_ire_masks_in_a_dtype_are_the_boolean_masks_as_views_of_one_tensor() -> None:
    """`flat_mask(dtype=...)` converts once for all parameters: the same 0/1 pattern, sharing one storage."""
    from methods._selection import flat_mask

    torch.manual_seed(0)
    curvature = [torch.rand(30, 40), torch.rand(40), torch.rand(7, 30, 2)]
    boolean = flat_mask(curvature, 0.7)
    floats = flat_mask(curvature, 0.7, dtype=torch.float32)
    assert sum(int(m.sum()) for m in boolean) == round(0.7 * sum(h.numel() for h in curvature))
    for b, f, h in zip(boolean, floats, curvature, strict=True):
        assert f.dtype == torch.float32 and f.shape == h.shape
        assert torch.equal(f, b.float())
    assert len({f.untyped_storage().data_ptr() for f in floats}) == 1


def test_ire_on_parameters_of_two_dtypes_boosts_each_in_its_own_dtype(monkeypatch) -> None:
    """A model whose parameters mix float64 and float32: each mask is kept in its parameter's dtype,
    and the momentum-buffer boost gives the same trajectory as the copy path."""
    class Cast(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.float()

    def run(heavy_ball: bool) -> tuple[list[torch.Tensor], list[torch.dtype]]:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(5, 8).double(), nn.Tanh(), Cast(), nn.Linear(8, 3))
        x, y = torch.randn(40, 5, dtype=torch.float64), torch.randint(0, 3, (40,))
        opt = build_optimizer(model, "sgd_ire", lr=0.1, momentum=0.9, kappa=1.5, gamma=0.6, ire_interval=4)
        _train_ire(model, opt, x, y, 10, heavy_ball, monkeypatch)
        masks = [opt.state[p]["ire_mask"].dtype for p in model.parameters()]
        return [p.detach().clone() for p in model.parameters()], masks

    (fast, masks), (copied, _) = run(True), run(False)
    assert masks == [p.dtype for p in fast] == [torch.float64] * 2 + [torch.float32] * 2
    for a, b in zip(fast, copied, strict=True):
        torch.testing.assert_close(a, b)
