"""Methods against ports of the official code (docs/METHODS.md names the repositories).

- ASAM: SamsungLabs/ASAM `asam.py` (T = |w| + η on tensors named *weight*, 1 elsewhere, η = 0.01), and
  davda54/sam `sam.py` with adaptive=True (T = |θ| on every tensor) as the `asam_scope: all` variant.
- psam: the preconditioner of step t never holds step t's own g², for `adam` and `ema_sq` alike.

Each port below follows the official code line by line, on plain torch.optim.SGD, without `methods`.
"""

from __future__ import annotations

import copy
import math
from collections import defaultdict

import pytest
import torch
from torch import nn

from methods import ConfigError, build_optimizer
from methods._selection import flat_mask

TOL = {"rtol": 1e-12, "atol": 1e-14}


def _net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6), nn.LayerNorm(6), nn.Tanh(), nn.Linear(6, 3)).double()
    with torch.no_grad():
        net[0].bias.zero_()  # zero-initialised: official ASAM perturbs it by ρ g / ‖T g‖ only (T = 1)
        net[1].bias.normal_()
    return net


def _batches(n: int = 3):
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(16, 4, generator=g, dtype=torch.float64), torch.randint(0, 3, (16,), generator=g))
            for _ in range(n)]


class OfficialASAM:
    """SamsungLabs/ASAM asam.py, `ASAM.ascent_step` / `descent_step`, unchanged but for formatting."""

    def __init__(self, optimizer, model, rho=0.5, eta=0.01):
        self.optimizer, self.model, self.rho, self.eta = optimizer, model, rho, eta
        self.state = defaultdict(dict)

    @torch.no_grad()
    def ascent_step(self):
        wgrads = []
        for n, p in self.model.named_parameters():
            if p.grad is None:
                continue
            t_w = self.state[p].get("eps")
            if t_w is None:
                t_w = torch.clone(p).detach()
                self.state[p]["eps"] = t_w
            if "weight" in n:
                t_w[...] = p[...]
                t_w.abs_().add_(self.eta)
                p.grad.mul_(t_w)
            wgrads.append(torch.norm(p.grad, p=2))
        wgrad_norm = torch.norm(torch.stack(wgrads), p=2) + 1.e-16
        for n, p in self.model.named_parameters():
            if p.grad is None:
                continue
            t_w = self.state[p].get("eps")
            if "weight" in n:
                p.grad.mul_(t_w)
            eps = t_w
            eps[...] = p.grad[...]
            eps.mul_(self.rho / wgrad_norm)
            p.add_(eps)
        self.optimizer.zero_grad()

    @torch.no_grad()
    def descent_step(self):
        for _, p in self.model.named_parameters():
            if p.grad is None:
                continue
            p.sub_(self.state[p]["eps"])
        self.optimizer.step()
        self.optimizer.zero_grad()


def _official(model, rho, lr, momentum, eta=0.01):
    base = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    asam = OfficialASAM(base, model, rho=rho, eta=eta)
    for x, y in _batches():
        nn.functional.cross_entropy(model(x), y).backward()
        asam.ascent_step()
        nn.functional.cross_entropy(model(x), y).backward()
        asam.descent_step()
    return model


def _davda54(model, rho, lr, momentum):
    """davda54/sam sam.py with adaptive=True: e_w = θ² g ρ / ‖|θ| g‖ on every tensor."""
    base = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    params = list(model.parameters())
    for x, y in _batches():
        nn.functional.cross_entropy(model(x), y).backward()
        with torch.no_grad():
            norm = torch.norm(torch.stack([(p.abs() * p.grad).norm(p=2) for p in params]), p=2)
            old = [p.data.clone() for p in params]
            for p in params:
                p.add_(torch.pow(p, 2) * p.grad * rho / (norm + 1e-12))
        base.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        with torch.no_grad():
            for p, o in zip(params, old, strict=True):
                p.data = o
        base.step()
        base.zero_grad()
    return model


def _ours(model, params, **hp):
    opt = build_optimizer(params, "asam", **hp)
    for x, y in _batches():
        opt.step(lambda x=x, y=y: (nn.functional.cross_entropy(logits := model(x), y), logits))
    return model


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_asam_default_is_the_official_rule(momentum):
    ref = _official(_net(), rho=0.5, lr=0.1, momentum=momentum)
    model = _net()
    got = _ours(model, model, rho=0.5, lr=0.1, momentum=momentum)  # defaults: asam_eta 0.01, weights only
    for (name, a), b in zip(got.named_parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12, msg=name)


def test_asam_default_perturbs_zero_biases_which_the_davda54_rule_never_moves():
    model = _net()
    x, y = _batches(1)[0]
    opt = build_optimizer(model, "asam", rho=0.5, lr=0.1, momentum=0.0)
    seen = {}

    def closure():
        seen.setdefault("count", 0)
        seen["count"] += 1
        if seen["count"] == 2:  # the perturbed pass: θ + ε
            seen["bias"] = model[0].bias.detach().clone()
        return nn.functional.cross_entropy(logits := model(x), y), logits

    opt.step(closure)
    assert seen["bias"].abs().max() > 1e-3  # T = 1 on the zero bias: ε = ρ g / ‖T g‖ ≠ 0


def test_asam_on_named_parameters_and_on_bare_tensors():
    """Names decide (LayerNorm's 1-d "weight" is scaled); bare tensors: two or more dimensions."""
    ref = _official(_net(), rho=0.5, lr=0.1, momentum=0.9)
    model = _net()
    got = _ours(model, model.named_parameters(), rho=0.5, lr=0.1, momentum=0.9)
    for a, b in zip(got.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)

    plain = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()  # weight ⇔ 2-d here
    ref = _official(copy.deepcopy(plain), rho=0.5, lr=0.1, momentum=0.9)
    got = _ours(plain, list(plain.parameters()), rho=0.5, lr=0.1, momentum=0.9)
    for a, b in zip(got.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_asam_scope_all_with_eta_zero_is_davda54():
    ref = _davda54(_net(), rho=0.5, lr=0.1, momentum=0.9)
    model = _net()
    got = _ours(model, model, rho=0.5, lr=0.1, momentum=0.9, asam_scope="all", asam_eta=0.0)
    for a, b in zip(got.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    official = _official(_net(), rho=0.5, lr=0.1, momentum=0.9)
    gap = max(float((a - b).detach().abs().max()) for a, b in zip(ref.parameters(), official.parameters(), strict=True))
    assert gap > 1e-3  # the two rules are really different


# ------------------------------------------------------------------ psam: one timing for every preconditioner
@pytest.mark.parametrize("method, hp", [("psam", {"preconditioner": "adam"}),
                                        ("psam", {"preconditioner": "ema_sq"}),
                                        ("psam", {"base": "sgd", "preconditioner": "ema_sq"}),
                                        ("sam", {"preconditioner": "fisher"})])
def test_preconditioner_of_the_first_step_is_the_identity(method, hp):
    """No statistics from before step 1 exist, so P = I: the first step is plain SAM's, for every kind."""
    base = hp.get("base", "adamw" if method == "psam" else "sgd")
    x, y = _batches(1)[0]
    models = []
    for name, extra in ((method, hp), ("sam", {"base": base})):
        model = _net()
        opt = build_optimizer(model, name, rho=0.05, lr=0.01, **{k: v for k, v in extra.items() if k != "base"},
                              base=base)
        opt.step(lambda model=model: (nn.functional.cross_entropy(logits := model(x), y), logits))
        models.append(model)
    for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True):
        torch.testing.assert_close(a, b, **TOL)


# ------------------------------------------------------------------ IRE: wmz9/IRE-algorithm-framework
def _official_update_mask(fisher: list[torch.Tensor], rank: float) -> list[torch.Tensor]:
    """NLP/LLM/ire.py `update_mask` at aa6a599 (both branches; Fisher EMA with beta 0 = the values given),
    unchanged but for names and the per-parameter loop."""
    values = torch.cat([torch.flatten(x) for x in fisher])
    if rank < 0.5:
        keep_num = int(len(values) * rank)
        _value, _ = torch.topk(values, keep_num, largest=True)
        threshold = _value[-1]
    else:
        keep_num = int(len(values) * (1 - rank))
        _value, _ = torch.topk(values, keep_num, largest=False)
        threshold = _value[-1]
    return [f <= threshold for f in fisher]


@pytest.mark.parametrize("ties", ["exact", "official"])
def test_ire_mask_tie_rules(ties):
    # p = 10; five coordinates tied at 0.1; γ = 0.35: round(3.5) = 4 (exact) vs int(3.5) = 3 plus ties (official)
    curvature = [torch.tensor([[0.5, 0.1], [0.1, 0.02]]), torch.tensor([0.1, 0.1, 0.9, 0.1, 0.7, 0.3])]
    got = flat_mask(curvature, gamma=0.35, ties=ties)
    if ties == "official":
        expected = _official_update_mask(curvature, rank=0.65)
        assert sum(int(m.sum()) for m in got) == 6  # 0.02 and all five ties at 0.1
    else:  # the smallest, then the first three of the tied coordinates in position order
        expected = [torch.tensor([[False, True], [True, True]]),
                    torch.tensor([True, False, False, False, False, False])]
    assert [m.tolist() for m in got] == [m.tolist() for m in expected]


@pytest.mark.parametrize("gamma", [0.05, 0.3, 0.35, 0.5, 0.51, 0.6, 0.65, 0.8, 0.9, 0.95, 0.99])
def test_official_ties_are_update_mask_on_both_branches(gamma):
    """`ire_ties: official` = update_mask with rank = 1 − γ: for γ ≤ 0.5 every h ≤ the int(γp)-th smallest,
    above it every h ≤ the int((1 − γ)p)-th LARGEST (p − k + 1 coordinates plus ties); with ties in the data."""
    g = torch.Generator().manual_seed(int(gamma * 100))
    for p in (10, 37, 200):
        flat = torch.randint(0, 6, (p,), generator=g).float() / 4  # few values: many ties
        curvature = [flat[: p // 3].reshape(-1, 1), flat[p // 3:]]
        got = torch.cat([m.reshape(-1) for m in flat_mask(curvature, gamma, ties="official")])
        rank = 1 - gamma
        k = int(p * rank) if rank < 0.5 else int(p * (1 - rank))
        if k == 0:  # update_mask fails on an empty top-k; we take the branch's limit: none (γ ≤ 0.5) or all
            assert bool(got.all()) if gamma > 0.5 else not bool(got.any()), (gamma, p)
            continue
        expected = torch.cat([m.reshape(-1) for m in _official_update_mask(curvature, rank=rank)])
        assert torch.equal(got, expected), (gamma, p)
        if gamma > 0.5:  # the second branch boosts p − k + 1 coordinates plus ties, more than γp
            assert int(got.sum()) >= p - k + 1


def test_official_ties_through_the_optimizer_boost_what_update_mask_marks():
    """admire with ire_ties official and curvature grad_sq: the stored mask is update_mask of g² (γ = 0.7:
    k = 3, the 3rd largest g² is 4, tied three times, so 9 of 10 coordinates where round(γp) would take 7)."""
    start = torch.tensor([0.5, -0.5, 1.0, 0.25, -1.0, 0.5, 2.0, 0.25, -0.25, 1.0])
    w = nn.Parameter(start.clone())
    opt = build_optimizer([w], "admire", lr=0.01, gamma=0.7, warmup=0, curvature="grad_sq", ire_ties="official")
    opt.step(lambda: ((w ** 2).sum(), None))
    expected = _official_update_mask([(2 * start) ** 2], rank=1 - 0.7)[0]
    assert opt.state[w]["ire_mask"].bool().tolist() == expected.tolist()
    assert int(expected.sum()) == 9


def _ire_run(lrs, *, peak, kappa, gamma, warmup, kappa_decay, interval=4, **extra):
    """sgd_ire (momentum 0, curvature grad_sq) configured with lr `peak`, under an external lr schedule `lrs`."""
    torch.manual_seed(0)
    w = nn.Parameter(torch.randn(8, dtype=torch.float64))
    scale = torch.linspace(0.1, 2.0, 8, dtype=torch.float64)
    opt = build_optimizer([w], "sgd_ire", lr=peak, momentum=0.0, kappa=kappa, gamma=gamma, warmup=warmup,
                          kappa_decay=kappa_decay, ire_interval=interval, curvature="grad_sq", **extra)
    for lr in lrs:
        opt.param_groups[0]["lr"] = lr
        opt.step(lambda: ((0.5 * scale * w ** 2).sum() + (w ** 3).sum() / 30, None))
    return w.detach()


def _ire_reference(lrs, *, peak, kappa, gamma, warmup, kappa_decay, lr_warmup, interval=4):
    """The official loop (train_admire_*.py): no mask before `warmup`, no boost during the lr warm-up (steps
    before `lr_warmup`); mask every `interval` steps; θ ← θ + Δ · mask · κ · lr / base_lr (prog_decay) or κ."""
    torch.manual_seed(0)
    w = torch.randn(8, dtype=torch.float64)
    scale = torch.linspace(0.1, 2.0, 8, dtype=torch.float64)
    mask = None
    for t, lr in enumerate(lrs):
        g = scale * w + w ** 2 / 10
        if t >= warmup and (t - warmup) % interval == 0:
            mask = torch.zeros(8, dtype=torch.float64)
            mask[torch.argsort(g ** 2, stable=True)[: round(gamma * 8)]] = 1.0
        delta = -lr * g
        if mask is not None and t >= lr_warmup:
            delta = delta + kappa * (lr / peak if kappa_decay else 1.0) * mask * delta
        w = w + delta
    return w


def _schedule(warm: int, total: int, peak: float) -> list[float]:
    """Linear warm-up to the peak over `warm` steps, then cosine decay."""
    up = [peak * (t + 1) / warm for t in range(warm)]
    down = [peak * 0.5 * (1 + math.cos(math.pi * t / (total - warm))) for t in range(total - warm)]
    return up + down


@pytest.mark.parametrize("kappa_decay", [False, True])
def test_ire_does_not_boost_during_the_lr_warmup(kappa_decay):
    lrs = _schedule(warm=6, total=20, peak=0.05)  # reaches the peak at step 5
    hp = {"kappa": 3.0, "gamma": 0.5, "warmup": 0, "kappa_decay": kappa_decay}  # IRE's own start: step 0
    got = _ire_run(lrs, peak=0.05, **hp)
    torch.testing.assert_close(got, _ire_reference(lrs, peak=0.05, lr_warmup=5, **hp), rtol=1e-12, atol=1e-14)
    assert not torch.allclose(got, _ire_reference(lrs, peak=0.05, lr_warmup=0, **hp))  # the rule matters
    # a schedule that peaks below the configured lr: the warm-up ends where the lr stops rising (step 6)
    low = _schedule(warm=6, total=20, peak=0.03)
    torch.testing.assert_close(_ire_run(low, peak=0.05, **hp), _ire_reference(low, peak=0.05, lr_warmup=6, **hp),
                               rtol=1e-12, atol=1e-14)


def test_ire_decays_kappa_against_the_configured_peak_lr():
    """κ_t = κ η_t / η_peak with η_peak the configured lr (0.08), not the largest lr seen (0.05)."""
    lrs = [0.05 * (1 - t / 20) for t in range(20)]
    hp = {"kappa": 3.0, "gamma": 0.5, "warmup": 2, "kappa_decay": True}
    got = _ire_run(lrs, peak=0.08, **hp)
    torch.testing.assert_close(got, _ire_reference(lrs, peak=0.08, lr_warmup=0, **hp), rtol=1e-12, atol=1e-14)
    assert not torch.allclose(got, _ire_reference(lrs, peak=0.05, lr_warmup=0, **hp))


@pytest.mark.parametrize("kappa_decay", [False, True])
def test_ire_start_lr_warmup_is_the_lm_scripts_start(kappa_decay):
    """ire_start lr_warmup (train_admire_*_Llama.py): the first mask and the first boost right after the lr
    warm-up, masks every K steps from there; the default (a third of total_steps) starts elsewhere."""
    lrs = _schedule(warm=6, total=20, peak=0.05)  # reaches the peak at step 5
    hp = {"kappa": 3.0, "gamma": 0.5, "kappa_decay": kappa_decay}
    got = _ire_run(lrs, peak=0.05, warmup=None, ire_start="lr_warmup", **hp)
    torch.testing.assert_close(got, _ire_reference(lrs, peak=0.05, warmup=5, lr_warmup=5, **hp), rtol=1e-12, atol=1e-14)
    third = _ire_run(lrs, peak=0.05, warmup=None, total_steps=20, **hp)  # round(20 / 3) = 7
    torch.testing.assert_close(third, _ire_reference(lrs, peak=0.05, warmup=7, lr_warmup=5, **hp), rtol=1e-12,
                               atol=1e-14)
    assert not torch.allclose(got, third)  # the start rule matters


def test_ire_start_lr_warmup_survives_a_state_dict_round_trip():
    w = nn.Parameter(torch.ones(4, dtype=torch.float64))
    opt = build_optimizer([w], "sgd_ire", lr=0.05, curvature="grad_sq", ire_start="lr_warmup", ire_interval=3)
    for lr in (0.01, 0.03, 0.05, 0.05):  # the warm-up ends at step 2
        opt.param_groups[0]["lr"] = lr
        opt.step(lambda: ((w ** 2).sum(), None))
    twin = build_optimizer([w], "sgd_ire", lr=0.05, curvature="grad_sq", ire_start="lr_warmup", ire_interval=3)
    twin.load_state_dict(opt.state_dict())
    assert twin.boost.start == opt.boost.start == 2


def test_ire_start_and_warmup_together_are_one_clear_error():
    with pytest.raises(ConfigError, match="warmup and ire_start: lr_warmup both set IRE's start"):
        build_optimizer([nn.Parameter(torch.ones(2))], "admire", warmup=5, ire_start="lr_warmup")


def test_ire_starts_after_a_third_of_total_steps_by_default():
    w = nn.Parameter(torch.ones(4, dtype=torch.float64))
    opt = build_optimizer([w], "sgd_ire", lr=0.01, total_steps=30, curvature="grad_sq")
    first = None
    for t in range(12):
        opt.step(lambda: ((w ** 2).sum(), None))
        if first is None and "ire_mask" in opt.state[w]:
            first = t
    assert first == 10  # round(30 / 3)
    no_horizon = build_optimizer([w], "sgd_ire", lr=0.01, curvature="grad_sq")
    no_horizon.step(lambda: ((w ** 2).sum(), None))
    assert "ire_mask" in no_horizon.state[w]  # without total_steps there is no late start to compute
