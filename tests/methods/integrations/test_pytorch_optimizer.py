"""pytorch-optimizer's SAM family through the adapter: the library's own update, every pass counted.

The conformance suite (tests/methods/test_conformance.py) already runs over these methods; here:
the adapter takes exactly the steps the library takes when used its own way, with the passes the
method declares (LookSAM fewer than its own `step()` makes); po_sam and our sam agree; the reasons
for leaving methods out still hold; without the extra, naming one says what to install.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import methods
from methods import _registry, build_optimizer, get_method
from methods.integrations import pytorch_optimizer as po

pytestmark = pytest.mark.skipif(not methods.comparators_installed(), reason="extra comparators not installed")
STEPS = 6


def _problem(seed: int = 0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
    x, y = torch.randn(32, 6), torch.randint(0, 3, (32,))
    return model, x, y


@pytest.mark.parametrize("name", po.NAMES)
def test_the_adapter_takes_the_library_steps_with_the_declared_passes(name: str) -> None:
    model, x, y = _problem()
    twin = _problem()[0]
    hp = {"lr": 0.05, "looksam_k": 3} if name == "looksam" else {"lr": 0.05}
    ours = build_optimizer(model, name, **hp)
    native = build_optimizer(twin, name, **hp).inner  # the library object, used as its docs say
    native_passes = 0

    def library_closure():
        nonlocal native_passes
        native_passes += 1
        native.zero_grad()
        with torch.enable_grad():  # GSAM.step runs under no_grad; its own set_closure enables grad like this
            logits = twin(x)
            loss = nn.functional.cross_entropy(logits, y)
            loss.backward()
        return (logits, loss) if name == "gsam" else loss

    for _ in range(STEPS):
        ours.step(lambda: (nn.functional.cross_entropy(model(x), y), None))
        if name in ("gsam", "wsam"):  # these take every gradient inside step()
            native.step(library_closure)
        else:  # SAM convention: the first gradient before step()
            library_closure()
            native.step(library_closure)
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    declared = get_method(name).grad_evals_per_step(**hp) * STEPS
    assert ours.counts == {"fwd": declared, "bwd": declared, "grad_evals": declared}
    if name == "looksam":  # k = 3: perturbed gradients at steps 0 and 3 only; the library's step() pays 2 per step
        assert declared == STEPS + 2 and native_passes == 2 * STEPS


def test_po_sam_and_our_sam_take_the_same_steps() -> None:
    model, x, y = _problem(seed=1)
    twin = _problem(seed=1)[0]
    ours = build_optimizer(model, "sam", lr=0.1, rho=0.05)
    theirs = build_optimizer(twin, "po_sam", lr=0.1, rho=0.05)
    for _ in range(STEPS):
        ours.step(lambda: (nn.functional.cross_entropy(model(x), y), None))
        theirs.step(lambda: (nn.functional.cross_entropy(twin(x), y), None))
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert ours.counts == theirs.counts


def test_bsam_is_left_out_because_its_step_moves_the_weights_without_an_update() -> None:
    import pytorch_optimizer

    torch.manual_seed(0)
    w = nn.Parameter(torch.zeros(1000))
    opt = pytorch_optimizer.BSAM([w], num_data=10, lr=1e-12, rho=0.05, weight_decay=0.0)
    w.grad = torch.zeros_like(w)

    def closure():
        opt.zero_grad()
        loss = ((w - 1) ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    # Were noise and perturbation taken back, lr = 1e-12 would leave w at 0: if this fails, the library
    # fixed BSAM and it can join the catalogue.
    assert w.detach().abs().mean() > 1e-3
    assert not hasattr(pytorch_optimizer, "GAM")
    with pytest.raises(methods.ConfigError, match="bsam.*left out.*noise"):
        get_method("bsam")


def test_without_the_extra_a_comparator_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = {k: v for k, v in _registry._REGISTRY.items() if k not in po.NAMES}
    monkeypatch.setattr(_registry, "_REGISTRY", registry)
    monkeypatch.setattr(_registry, "_UNAVAILABLE", {})
    monkeypatch.setattr(po, "comparators_installed", lambda: False)
    po.register_all()
    assert not set(po.NAMES) & {m.name for m in methods.list_methods()}
    for name in po.NAMES:
        with pytest.raises(methods.ConfigError, match=r"pytorch-optimizer.*\[comparators\]"):
            build_optimizer(nn.Linear(2, 2), name)


def test_comparators_clip_and_round_trip_through_the_trainer_protocol() -> None:
    model, x, y = _problem()
    opt = build_optimizer(model, "gsam", lr=0.05, grad_clip=1e-3)
    before = [p.detach().clone() for p in model.parameters()]
    opt.step(lambda: (nn.functional.cross_entropy(model(x), y), None))
    moved = torch.cat([(p - b).flatten() for p, b in zip(model.parameters(), before, strict=True)])
    assert moved.norm() <= 0.05 * 1e-3 * (1 + 1e-4) + 1e-9  # SGD momentum's first step: lr * clipped grad
    assert opt.param_groups is opt.base.param_groups
    assert get_method("gsam").plugin and "rho" in opt.hparams
