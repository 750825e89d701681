"""The presets `nbar` and `obar` are the BAR paper's Algorithms 2 and 3 (Li, Zhang, He, NeurIPS 2024).

The reference below is written straight from the two algorithms, with nothing from `methods`: a
torch.optim.SGD or torch.optim.AdamW over a small peft LoRA model, the pairs named explicitly, an lr
scheduler that changes η between steps (a warm-up, then a decay), α_t = μ0 · s(t/T) with t = 0 at the
first step, Frobenius norms of the whole matrices, the test with ≥, the rescale before the base step
and the base step with the gradient from before the rescale. Two extra pairs tie exactly (same values,
so same norms, and same gradients): one at the first step, one (outside the loss) at every step.

Then the same checks against mutants of the reference (strict >, η fixed at the first lr, t from 1)
and against our drift rule: each must differ, so the comparison does see those details.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from methods import build_optimizer

peft = pytest.importorskip("peft")

STEPS, LR, MU0, WD = 24, 3e-2, 1.5, 0.01
REL = 1e-6


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.q, self.v, self.out = nn.Linear(6, 6), nn.Linear(6, 6), nn.Linear(6, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.v(torch.tanh(self.q(x)))))


class _Model(nn.Module):
    """A peft LoRA model plus two pairs that tie: (tx, ty) in the loss, (ux, uy) outside it (g = 0)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lora = peft.get_peft_model(_Tiny(), peft.LoraConfig(r=2, lora_alpha=4, target_modules=["q", "v"]))
        with torch.no_grad():  # B away from peft's 0: one pair with ‖B‖ > ‖A‖, one with ‖B‖ < ‖A‖
            for name, p in self.lora.named_parameters():
                if "lora_B" in name:
                    p.copy_(torch.randn(p.shape) * (1.5 if ".q." in name else 0.05))
        same = torch.tensor([0.5, -0.25, 1.0, 0.75])  # exact in float32: the norms tie whatever the sum order
        self.tx, self.ty = nn.Parameter(same.clone()), nn.Parameter(same.clone())
        self.ux, self.uy = nn.Parameter(same.clone()), nn.Parameter(same.clone())

    def pairs(self) -> list[tuple[nn.Parameter, nn.Parameter]]:
        named = dict(self.lora.named_parameters())
        lora = [(named[n.replace("lora_A", "lora_B")], p) for n, p in named.items() if "lora_A" in n]
        return [*lora, (self.tx, self.ty), (self.ux, self.uy)]

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        fit = (self.lora(x).squeeze(-1) - y).square().mean()
        return fit + (self.tx @ self.ty - 0.3).square() + 0.0 * (self.ux @ self.uy)


def _batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(8, 6, generator=g), torch.randn(8, generator=g)) for _ in range(STEPS)]


def _lr_factor(t: int) -> float:
    """A warm-up over 4 steps, then a linear decay: η changes at every step."""
    return (t + 1) / 4 if t < 4 else 1.0 - 0.7 * (t - 4) / STEPS


def _alpha(schedule: str, t: int) -> float:
    """α_t = μ0 · s(t/T), written out."""
    frac = t / STEPS
    return MU0 * {"constant": 1.0, "linear": 1.0 - frac, "cosine": 0.5 * (1.0 + math.cos(math.pi * frac))}[schedule]


def _base(params: list[nn.Parameter], base: str) -> torch.optim.Optimizer:
    if base == "sgd":
        return torch.optim.SGD(params, lr=LR, momentum=0.9)
    return torch.optim.AdamW(params, lr=LR, weight_decay=WD)


def _reference(model: _Model, kind: str, base: str, schedule: str, mutant: str = "") -> None:
    """Algorithms 2 (nbar) and 3 (obar), with torch's optimizer as "Optimizer update (via Adam or SGD)"."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = _base(params, base)
    lrs = torch.optim.lr_scheduler.LambdaLR(opt, _lr_factor)
    first_lr = opt.param_groups[0]["lr"]
    for t, (x, y) in enumerate(_batches()):
        opt.zero_grad()
        model.loss(x, y).backward()  # line 3: the stochastic gradient at the current point
        eta = first_lr if mutant == "lr0" else opt.param_groups[0]["lr"]
        a = _alpha(schedule, t + 1 if mutant == "t1" else t) * eta
        with torch.no_grad():
            for px, py in model.pairs():
                if kind == "nbar":  # line 4: ‖g_x‖ ≥ ‖g_y‖ → x grows
                    first = torch.linalg.norm(px.grad) >= torch.linalg.norm(py.grad)
                else:  # line 4: ‖x‖ ≥ ‖y‖ → x shrinks
                    first = not bool(torch.linalg.norm(px) >= torch.linalg.norm(py))
                if mutant == "strict":
                    first = (torch.linalg.norm(px.grad) > torch.linalg.norm(py.grad) if kind == "nbar"
                             else not bool(torch.linalg.norm(px) > torch.linalg.norm(py)))
                px.mul_(1 + a if first else 1 - a)
                py.mul_(1 - a if first else 1 + a)
        opt.step()  # line 11, with the gradient from before the rescale
        lrs.step()


def _ours(model: _Model, kind: str, base: str, schedule: str, **hp) -> None:
    extra = {"momentum": 0.9} if base == "sgd" else {"weight_decay": WD}
    opt = build_optimizer([p for p in model.parameters() if p.requires_grad], kind, pairs=model.pairs(),
                          base=base, lr=LR, mu0=MU0, schedule=schedule, total_steps=STEPS, **extra, **hp)
    lrs = torch.optim.lr_scheduler.LambdaLR(opt, _lr_factor)
    for x, y in _batches():
        opt.step(lambda x=x, y=y: (model.loss(x, y), None))
        lrs.step()


def _worst_relative_gap(a: _Model, b: _Model) -> float:
    return max(float((p.detach() - q.detach()).norm() / q.detach().norm())
               for p, q in zip(a.parameters(), b.parameters(), strict=True))


def _runs(kind: str, base: str, schedule: str, mutant: str = "", **hp) -> float:
    start = _Model()
    ours, ref = copy.deepcopy(start), copy.deepcopy(start)
    _ours(ours, kind, base, schedule, **hp)
    _reference(ref, kind, base, schedule, mutant)
    moved = _worst_relative_gap(ref, start)
    assert moved > 1e-2, "the runs must go somewhere"
    return _worst_relative_gap(ours, ref)


@pytest.mark.parametrize("schedule", ["constant", "linear", "cosine"])
@pytest.mark.parametrize("base", ["sgd", "adamw"])
@pytest.mark.parametrize("kind", ["nbar", "obar"])
def test_the_preset_is_the_papers_algorithm(kind: str, base: str, schedule: str) -> None:
    gap = _runs(kind, base, schedule)
    assert gap < REL, f"{kind} on {base}, {schedule}: {gap:.2e} relative from the paper's loop"


@pytest.mark.parametrize("mutant", ["strict", "lr0", "t1"])
@pytest.mark.parametrize("kind", ["nbar", "obar"])
def test_the_comparison_sees_ties_the_current_lr_and_t0(kind: str, mutant: str) -> None:
    """A reference with > for ≥, η fixed at the first lr, or t counted from 1 is far from the preset."""
    gap = _runs(kind, "adamw", "linear", mutant)
    assert gap > 1e3 * REL, f"{kind} vs the {mutant} mutant: only {gap:.2e} apart"


@pytest.mark.parametrize("kind", ["nbar", "obar"])
def test_the_old_drift_rule_is_not_the_paper(kind: str) -> None:
    gap = _runs(kind, "adamw", "linear", bar_rule="drift")
    assert gap > 1e3 * REL, f"bar_rule drift ({kind}) is only {gap:.2e} from the paper's loop"


def test_an_old_export_naming_the_drift_knobs_fails_with_one_line_or_loads_as_drift(tmp_path) -> None:
    """An exported config from before the paper's rule (bar_norm, bar_scale, no bar_rule) says what changed;
    with bar_rule: drift added it builds the drift rule it was tuned with."""
    from methods import ConfigError, load_config

    old = tmp_path / "best.yaml"
    old.write_text("method: nbar\nhyperparameters: {lr: 3.0e-4, mu0: 0.1, bar_norm: global, bar_scale: adam}\n")
    x, y = nn.Parameter(torch.ones(3, 2)), nn.Parameter(torch.ones(2, 4))
    with pytest.raises(ConfigError) as caught:
        build_optimizer([x, y], pairs=[(x, y)], **load_config(old))
    message = str(caught.value)
    assert "\n" not in message and "bar_norm" in message and "bar_rule: drift" in message
    assert "Algorithm 2" in message
    opt = build_optimizer([x, y], pairs=[(x, y)], **load_config(old), bar_rule="drift")
    assert (opt.hparams["bar_rule"], opt.hparams["bar_norm"]) == ("drift", "global")


def test_a_new_export_round_trips(tmp_path) -> None:
    """What resolve fills for the paper's rule (bar_rule paper, the drift knobs unset) builds again as it is."""
    x, y = nn.Parameter(torch.ones(3, 2)), nn.Parameter(torch.ones(2, 4))
    hparams = build_optimizer([x, y], "obar", pairs=[(x, y)], lr=1e-3).hparams
    assert hparams["bar_rule"] == "paper" and hparams["bar_norm"] is None and hparams["bar_scale"] is None
    assert build_optimizer([x, y], "obar", pairs=[(x, y)], **hparams).hparams == hparams
