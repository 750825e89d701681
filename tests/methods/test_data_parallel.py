"""Data parallel over several steps (issue 34): two gloo ranks at global batch 2B = one process at 2B ("Exact"),
and `perturb_sync: local` = the mean of the per-shard SAM gradients (m-sharpness).

Each method is built through `build_optimizer` (the public factory, by registry name). Every step, rank r
takes the r-th half of the step's batch; after STEPS steps both ranks must hold the single process's
parameters and its whole optimizer state (base moments, IRE masks, the preconditioner's statistics,
counts) to 1e-5, and every rank must have taken the same BAR sign tests and set the same IRE masks at every
step. One spawn of two processes serves every case.

`perturb_sync: local` perturbs each rank with its own shard's gradient and averages only the perturbed one:
the update must equal plain SGD on the mean over shards of SAM's gradient, each computed on its own by the
reference below (written from Foret et al.'s formula, not from `methods/`), at one all-reduce a step instead
of two.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from test_distributed import _Net  # the same small LoRA-paired net (tests/methods is on sys.path)
from torch import nn
from torch.func import functional_call

from methods import ConfigError, bar, build_optimizer, ire

STEPS, BATCH, WORLD = 6, 16, 2  # global batch 16: 8 per rank
IRE = {"curvature": "grad_sq", "warmup": 0, "ire_interval": 2}  # a new mask every other step, from step 0
CASES: dict[str, tuple[str, dict[str, Any]]] = {  # case -> (method, hyperparameters)
    "sgd": ("sgd", {}),
    "adamw": ("adamw", {}),
    "sam": ("sam", {"rho": 0.1}),
    "sam_ema_sq": ("sam", {"rho": 0.1, "preconditioner": "ema_sq"}),  # the preconditioner's own statistics
    "psam": ("psam", {"rho": 0.1}),  # preconditioned by AdamW's v̂
    "asam": ("asam", {}),
    "fsam": ("fsam", {"rho": 0.1}),
    "nbar": ("nbar", {"mu0": 0.5}),
    "obar": ("obar", {"mu0": 0.5}),
    "admire": ("admire", {**IRE, "kappa": 2.0}),
    "sam_ire": ("sam_ire", {**IRE, "rho": 0.1, "kappa": 2.0}),
}
RANKS_AGREE = {  # no single-process twin, but every rank must hold the same θ, state and masks
    "admire_fisher": ("admire", {"warmup": 0, "ire_interval": 2}),  # labels sampled per rank, Fisher averaged
    "sam_ire_local": ("sam_ire", {**IRE, "rho": 0.1, "perturb_sync": "local"}),  # g averaged for the mask
    "psam_local": ("psam", {"rho": 0.1, "perturb_sync": "local"}),  # P from AdamW's v̂: the same everywhere
}
SGD = {"lr": 0.05, "momentum": 0.0}  # θ ← θ − lr · g̃: the reference's update
LOCAL = {"sam_local": ("sam", {**SGD, "rho": 0.1, "perturb_sync": "local"}),
         "sam_global": ("sam", {**SGD, "rho": 0.1})}


def _data() -> tuple[torch.Tensor, torch.Tensor, _Net]:
    torch.manual_seed(0)
    model = _Net()
    x = torch.randn(STEPS * BATCH, 6)
    return x, (x @ torch.randn(6, 3)).argmax(dim=1), model


def _tensors(tree: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every tensor (and number) in a state_dict, by its path."""
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items() for k, v in _tensors(sub, f"{prefix}/{key}").items()}
    if isinstance(tree, (list, tuple)):
        return {k: v for i, sub in enumerate(tree) for k, v in _tensors(sub, f"{prefix}/{i}").items()}
    if isinstance(tree, torch.Tensor):
        return {prefix: tree.detach().clone()}
    if isinstance(tree, (int, float)) and not isinstance(tree, bool):
        return {prefix: torch.tensor(float(tree))}
    return {}


def _record(module: Any, name: str, log: list[Any], keep: Callable[[Any, tuple], Any]) -> Callable[[], None]:
    """Wrap module.name so each call appends keep(result, args) to `log`; returns the undo."""
    original = getattr(module, name)

    def wrapped(*args, **kwargs):
        out = original(*args, **kwargs)
        log.append(keep(out, args))
        return out
    setattr(module, name, wrapped)
    return lambda: setattr(module, name, original)


def run_case(method: str, hp: dict[str, Any], model: nn.Module, x: torch.Tensor, y: torch.Tensor,
             shard: slice | None = None, **build: Any) -> dict[str, Any]:
    """STEPS steps on consecutive batches (or this rank's `shard` of each): parameters, state, signs, masks."""
    signs: list[torch.Tensor] = []
    masks: list[torch.Tensor] = []
    reduces: list[None] = []
    undo = [_record(bar, "_signs", signs, lambda out, args: out.detach().clone()),
            _record(ire, "flat_mask", masks, lambda out, args: torch.cat([m.reshape(-1).float() for m in out])),
            _record(dist, "all_reduce", reduces, lambda out, args: None)]
    try:
        opt = build_optimizer(model, method, pairs=[(model.lora_B, model.lora_A)], **hp, **build)
        for step in range(STEPS):
            xb, yb = x[step * BATCH:(step + 1) * BATCH], y[step * BATCH:(step + 1) * BATCH]
            if shard is not None:
                xb, yb = xb[shard], yb[shard]

            def closure(xb=xb, yb=yb):
                logits = model(xb)
                return nn.functional.cross_entropy(logits, yb), logits
            opt.step(closure)
    finally:
        for u in undo:
            u()
    return {"params": [p.detach().clone() for p in model.parameters()], "state": _tensors(opt.state_dict()),
            "signs": signs, "masks": masks, "reduces": len(reduces)}


def worker(rank: int, folder: str, cases: dict[str, tuple[str, dict[str, Any]]]) -> None:
    """One rank: every case on its half of each batch, saved to rank{rank}.pt."""
    torch.set_num_threads(1)  # two ranks on a shared machine
    # a rank left waiting in an all-reduce its peer never makes fails in a minute instead of hanging
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=WORLD,
                            timeout=timedelta(seconds=60))
    x, y, model = _data()
    half = slice(rank * BATCH // WORLD, (rank + 1) * BATCH // WORLD)
    out = {case: run_case(method, hp, copy.deepcopy(model), x, y, half) for case, (method, hp) in cases.items()}
    out.update({f"fp16_{sync}": _fp16_overflow_on_rank_1(rank, sync, copy.deepcopy(model), x[half], y[half])
                for sync in ("global", "local")})
    torch.save(out, Path(folder) / f"rank{rank}.pt")
    # both ranks leave together: a rank that tears the group down while its peer is still in the last
    # collective aborts at exit about one run in six here (gloo: "terminate called without an active exception")
    dist.barrier()
    dist.destroy_process_group()


def _fp16_overflow_on_rank_1(rank: int, sync: str, model: nn.Module, x: torch.Tensor,
                             y: torch.Tensor) -> dict[str, Any]:
    """Three fp16 sam steps on this rank's shard; at the first, rank 1's inputs overflow fp16 (rank 0's do not)."""
    opt = build_optimizer(model, "sam", rho=0.1, perturb_sync=sync, precision="fp16")
    for step in range(3):
        xb = x * 1e6 if step == 0 and rank == 1 else x

        def closure(xb=xb):
            logits = model(xb)
            return nn.functional.cross_entropy(logits, y), logits
        opt.step(closure)
    return {"params": [p.detach().clone() for p in model.parameters()], "scale": opt.loss_scale.state_dict()}


def spawn(folder: Path, cases: dict[str, tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Run `worker` on WORLD gloo ranks; their results, by rank."""
    # spawn, not fork: a child forked after the parent ran torch's OpenMP pool can hang in its first op
    mp.start_processes(worker, args=(str(folder), cases), nprocs=WORLD, join=True, start_method="spawn")
    return [torch.load(folder / f"rank{r}.pt") for r in range(WORLD)]


def _close(got: dict[str, Any], want: dict[str, Any], case: str, atol: float = 1e-5) -> None:
    for a, b in zip(got["params"], want["params"], strict=True):
        assert torch.allclose(a, b, atol=atol), f"{case}: parameters differ"
    assert got["state"].keys() == want["state"].keys(), case
    for key, value in want["state"].items():
        assert torch.allclose(got["state"][key].float(), value.float(), atol=atol), f"{case}: state {key} differs"
    for kind in ("signs", "masks"):
        assert len(got[kind]) == len(want[kind]), f"{case}: {kind}"
        for a, b in zip(got[kind], want[kind], strict=True):
            assert torch.equal(a, b), f"{case}: {kind} differ"


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict[str, Any]]:
    return spawn(tmp_path_factory.mktemp("ranks"), {**CASES, **RANKS_AGREE, **LOCAL})


@pytest.mark.slow
def test_two_gloo_ranks_at_global_batch_2b_equal_one_process_at_2b(ranks):
    x, y, model = _data()
    start = [p.detach().clone() for p in model.parameters()]
    for case, (method, hp) in CASES.items():
        whole = run_case(method, hp, copy.deepcopy(model), x, y)
        moved = sum((w - s).norm() for w, s in zip(whole["params"], start, strict=True))
        assert moved > 1e-2, case  # the steps did something the ranks could get wrong
        for rank in ranks:
            _close(rank[case], whole, case)
    assert len(ranks[0]["nbar"]["signs"]) == STEPS and len(ranks[0]["obar"]["signs"]) == STEPS
    assert len(ranks[0]["admire"]["masks"]) == len(ranks[0]["sam_ire"]["masks"]) == STEPS // 2
    assert any(k.endswith("precond_v") for k in ranks[0]["sam_ema_sq"]["state"])
    assert any(k.endswith("ire_mask") for k in ranks[0]["sam_ire"]["state"])
    fisher = [rank["admire_fisher"] for rank in ranks]
    assert len(fisher[0]["masks"]) == STEPS // 2
    _close(fisher[1], fisher[0], "admire_fisher", atol=1e-6)  # one mask, one θ on both ranks


def _sam_gradient(model: nn.Module, theta: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor,
                  rho: float) -> dict[str, torch.Tensor]:
    """Foret et al.: g = ∇L(θ), ε = ρ g / (‖g‖ + 1e-12) over all parameters, g̃ = ∇L(θ + ε); L on (x, y) alone."""
    def grad(at: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        at = {k: v.detach().requires_grad_() for k, v in at.items()}
        loss = nn.functional.cross_entropy(functional_call(model, at, (x,)), y)
        return dict(zip(at, torch.autograd.grad(loss, list(at.values())), strict=True))
    g = grad(theta)
    norm = torch.sqrt(sum((v.double() ** 2).sum() for v in g.values()))
    return grad({k: theta[k] + rho * g[k] / (norm + 1e-12) for k in theta})


@pytest.mark.slow
def test_perturb_sync_local_is_the_mean_of_the_per_shard_sam_gradients(ranks):
    x, y, model = _data()
    theta = {k: v.detach().clone() for k, v in model.named_parameters()}
    lr, rho = LOCAL["sam_local"][1]["lr"], LOCAL["sam_local"][1]["rho"]
    for step in range(STEPS):  # plain SGD on the mean over shards of each shard's own SAM gradient
        shards = [_sam_gradient(model, theta, x[i:i + BATCH // WORLD], y[i:i + BATCH // WORLD], rho)
                  for i in range(step * BATCH, (step + 1) * BATCH, BATCH // WORLD)]
        theta = {k: theta[k] - lr * sum(s[k] for s in shards) / WORLD for k in theta}
    for rank in ranks:
        for got, want in zip(rank["sam_local"]["params"], theta.values(), strict=True):
            assert torch.allclose(got, want.float(), atol=1e-5)
        assert not all(torch.allclose(a, b, atol=1e-4)
                       for a, b in zip(rank["sam_local"]["params"], rank["sam_global"]["params"], strict=True))
        assert rank["sam_global"]["reduces"] == 2 * STEPS and rank["sam_local"]["reduces"] == STEPS  # one fewer
        assert rank["sam_ire_local"]["reduces"] == 2 * STEPS - STEPS // 2  # g averaged on the mask's steps
    for case in ("sam_ire_local", "psam_local"):
        _close(ranks[1][case], ranks[0][case], case, atol=1e-6)
    assert len(ranks[0]["sam_ire_local"]["masks"]) == STEPS // 2


def test_perturb_sync_is_a_perturbation_hyperparameter_checked_like_any_other():
    _, _, model = _data()
    for method in ("sam", "asam", "fsam", "psam", "lora_sam", "sam_ire"):
        opt = build_optimizer(model, method, pairs=[(model.lora_B, model.lora_A)], perturb_sync="local")
        assert opt.hparams["perturb_sync"] == "local"
    assert build_optimizer(model, "sam").hparams["perturb_sync"] == "global"
    with pytest.raises(ConfigError, match="perturb_sync must be one of global, local"):
        build_optimizer(model, "sam", perturb_sync="ring")
    with pytest.raises(ConfigError, match="unknown hyperparameter.*perturb_sync"):
        build_optimizer(model, "adamw", perturb_sync="local")
    with pytest.raises(ConfigError, match="preconditioner 'ema_sq'.*perturb_sync: global"):
        build_optimizer(model, "sam", preconditioner="ema_sq", perturb_sync="local")
    assert build_optimizer(model, "sam", preconditioner="fisher", perturb_sync="local")  # averaged statistics


@pytest.mark.slow
def test_an_fp16_overflow_on_one_rank_skips_the_step_on_every_rank(ranks):
    """The overflow flag is summed over ranks before the skip: rank 0's gradient was finite, rank 1's was not,
    and both skip the step and halve the scale, then take the same steps (with `local` the first pass is not
    averaged, so without the summed flag rank 0 would go on into an all-reduce rank 1 never makes)."""
    _, _, model = _data()
    start = [p.detach() for p in model.parameters()]
    for sync in ("global", "local"):
        got = [rank[f"fp16_{sync}"] for rank in ranks]
        assert [g["scale"]["skipped_steps"] for g in got] == [1, 1] and got[0]["scale"] == got[1]["scale"], sync
        assert got[0]["scale"]["scale"] == 2.0 ** 15
        for a, b in zip(got[0]["params"], got[1]["params"], strict=True):
            assert torch.isfinite(a).all() and torch.allclose(a, b, atol=1e-6), sync
        assert any(not torch.allclose(a, s) for a, s in zip(got[0]["params"], start, strict=True)), sync  # it moved
