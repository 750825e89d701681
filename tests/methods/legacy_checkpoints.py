"""State dicts saved by sharptune before the parts owned namespaced slices (issue 35), and what followed them.

`python tests/methods/legacy_checkpoints.py` was run once, on commit 7e58c13 (the flat `state_dict`), to write
`data/state_dicts_flat.pt`: for each case, the model and optimizer state after WARM steps, and the parameters
after AFTER more steps. `test_state_slices.py` loads each into today's optimizer, takes the same steps, and must
land on the same parameters: old checkpoints still resume exactly.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from torch import nn

FILE = Path(__file__).with_name("data") / "state_dicts_flat.pt"
WARM, AFTER, BATCH = 5, 3, 12
IRE = {"warmup": 0, "ire_interval": 2}
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "sgd": ("sgd", {}),
    "adamw": ("adamw", {}),
    "sam_ema_sq": ("sam", {"rho": 0.1, "preconditioner": "ema_sq"}),
    "sam_fisher": ("sam", {"rho": 0.1, "preconditioner": "fisher", "rho_schedule": "cosine", "total_steps": 10}),
    "psam": ("psam", {"rho": 0.1}),
    "asam": ("asam", {}),
    "fsam": ("fsam", {"rho": 0.1}),
    "lora_sam": ("lora_sam", {"rho": 0.1}),
    "nbar": ("nbar", {"mu0": 0.5, "schedule": "linear", "total_steps": 10}),
    "obar": ("obar", {"mu0": 0.5}),
    "nbar_drift": ("nbar", {"mu0": 0.5, "bar_rule": "drift"}),
    "admire": ("admire", {**IRE, "kappa": 2.0}),
    "sgd_ire": ("sgd_ire", {**IRE, "curvature": "grad_sq", "kappa_decay": True}),
    "sam_ire": ("sam_ire", {**IRE, "rho": 0.1, "curvature": "grad_sq"}),
}


class Net(nn.Module):
    """A LoRA-paired net with dropout (the replayed passes must draw the same mask)."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(6, 16)
        self.drop = nn.Dropout(0.2)
        self.lora_A = nn.Parameter(0.3 * torch.randn(4, 16))
        self.lora_B = nn.Parameter(0.3 * torch.randn(3, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(torch.tanh(self.inp(x))) @ (self.lora_B @ self.lora_A).T


def batches(count: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(BATCH, 6, generator=g), torch.randint(0, 3, (BATCH,), generator=g)) for _ in range(count)]


def steps(model: Net, opt: Any, data: list[tuple[torch.Tensor, torch.Tensor]], seed: int) -> None:
    """The same steps wherever they run: the global RNG (dropout) seeded first."""
    torch.manual_seed(seed)
    for x, y in data:
        opt.step(lambda x=x, y=y: ((out := model(x)) is not None and nn.functional.cross_entropy(out, y), out))


def write() -> None:
    from methods import build_optimizer

    saved = {}
    for case, (method, hp) in CASES.items():
        torch.manual_seed(0)
        model = Net()
        opt = build_optimizer(model, method, lr=0.05, pairs=[(model.lora_B, model.lora_A)], **hp)
        steps(model, opt, batches(WARM, 1), seed=2)
        checkpoint = copy.deepcopy({"model": model.state_dict(), "optimizer": opt.state_dict()})  # live tensors
        steps(model, opt, batches(AFTER, 3), seed=4)
        saved[case] = {**checkpoint, "after": {k: v.clone() for k, v in model.state_dict().items()},
                       "counts": dict(opt.counts)}
    FILE.parent.mkdir(exist_ok=True)
    torch.save(saved, FILE)


if __name__ == "__main__":
    write()
