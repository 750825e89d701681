"""Data parallel (issue 13): two gloo processes on half a batch each take the whole batch's step.

The method takes its gradients with autograd.grad, which DDP's reducer never sees; the optimizer
averages them itself. One step of sam, nbar and admire on each rank's half must equal the
single-process step on the whole batch (1e-5), with and without the DDP wrapper (under `no_sync`),
and with IRE's Fisher curvature (labels sampled per rank) both ranks must still hold the same θ.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from methods import build_optimizer

CASES = {  # name -> (method, hyperparameters)
    "sam": ("sam", {"rho": 0.1}),
    "nbar": ("nbar", {"mu0": 0.5}),
    "admire": ("admire", {"curvature": "grad_sq", "warmup": 0, "kappa": 3.0}),
    "sam_backward": ("sam", {"rho": 0.1}),
}


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(6, 16)
        self.lora_A = nn.Parameter(0.3 * torch.randn(4, 16))
        self.lora_B = nn.Parameter(0.3 * torch.randn(3, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.inp(x)) @ (self.lora_B @ self.lora_A).T


def _data() -> tuple[torch.Tensor, torch.Tensor, _Net]:
    torch.manual_seed(0)
    model = _Net()
    x = torch.randn(32, 6)
    return x, (x @ torch.randn(6, 3)).argmax(dim=1), model


def _step(model: _Net, module: nn.Module, name: str, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    method, hp = CASES[name]
    style = "backward" if name.endswith("_backward") else "outputs"
    opt = build_optimizer(model, method, pairs=[(model.lora_B, model.lora_A)], closure_style=style, **hp)

    def closure():
        logits = module(x)
        return nn.functional.cross_entropy(logits, y), logits

    def backward_closure():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(module(x), y)
        loss.backward()
        return loss

    opt.step(backward_closure if style == "backward" else closure)
    return [p.detach().clone() for p in model.parameters()]


def _worker(rank: int, folder: str) -> None:
    torch.set_num_threads(1)  # two ranks on a shared machine
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=2)
    x, y, model = _data()
    half = slice(rank * 16, (rank + 1) * 16)
    out: dict[str, list[torch.Tensor]] = {}
    for name in CASES:
        local = copy.deepcopy(model)
        out[name] = _step(local, local, name, x[half], y[half])
    wrapped = copy.deepcopy(model)
    ddp = DistributedDataParallel(wrapped)
    with ddp.no_sync():  # DDP's reducer stays idle; the optimizer averages each pass itself
        out["sam_ddp"] = _step(wrapped, ddp, "sam", x[half], y[half])
    fisher = copy.deepcopy(model)
    build_optimizer(fisher, "admire", warmup=0).step(
        lambda: (nn.functional.cross_entropy(logits := fisher(x[half]), y[half]), logits))
    out["admire_fisher"] = [p.detach().clone() for p in fisher.parameters()]
    torch.save(out, Path(folder) / f"rank{rank}.pt")
    # both ranks leave together: a rank that tears the group down while its peer is still in the last
    # collective aborts at exit about one run in six here (gloo: "terminate called without an active exception")
    dist.barrier()
    dist.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_ranks_on_half_batches_take_the_whole_batch_step(tmp_path):
    # spawn, not fork: a child forked after the parent ran torch's OpenMP pool can hang in its first op
    mp.start_processes(_worker, args=(str(tmp_path),), nprocs=2, join=True, start_method="spawn")
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    x, y, model = _data()
    start = [p.detach().clone() for p in model.parameters()]
    for name in [*CASES, "sam_ddp"]:
        local = copy.deepcopy(model)
        whole = _step(local, local, name.removesuffix("_ddp"), x, y)
        moved = sum((w - s).norm() for w, s in zip(whole, start, strict=True))
        assert moved > 1e-3, name
        for rank in ranks:
            for got, want in zip(rank[name], whole, strict=True):
                assert torch.allclose(got, want, atol=1e-5), name
    for a, b in zip(ranks[0]["admire_fisher"], ranks[1]["admire_fisher"], strict=True):
        assert torch.allclose(a, b, atol=1e-6)  # averaged Fisher curvature: one mask on both ranks
