"""Refuse a per-trial resource request that the Ray cluster cannot hold, before the run starts.

Ray would leave such trials PENDING forever (its autoscaler may add nodes; a fixed cluster never does).
Only nodes alive now count; a cluster that grows later can be used by running again. A trial of several
workers (`resources.workers`, a Ray Train run) fits when the nodes together hold that many workers, each
worker whole on one node, plus the Tune trial that waits on them (`DRIVER_CPU`).
"""

from __future__ import annotations

import math
from typing import Any

import ray

from tuner.errors import UserError

DRIVER_CPU = 0.01  # the Tune trial of a multi-worker trial: it only waits on its Ray Train run


def _fmt(value: float) -> str:
    return f"{value:g}"


def _fits(cpu: float, gpu: float, have: tuple[float, float]) -> int:
    """How many workers of (cpu, gpu) one node of `have` (CPU, GPU) holds."""
    by_cpu = math.floor(have[0] / cpu + 1e-9) if cpu > 0 else math.inf
    by_gpu = math.floor(have[1] / gpu + 1e-9) if gpu > 0 else math.inf
    return int(min(by_cpu, by_gpu, 1 << 30))


def check_placement(cpu: float, gpu: float, nodes: list[dict[str, Any]] | None = None, *, workers: int = 1) -> None:
    """UserError naming the request and every node's CPUs/GPUs when the cluster cannot hold one trial."""
    nodes = [n for n in (ray.nodes() if nodes is None else nodes) if n.get("Alive", True)]
    have = [(float(n.get("Resources", {}).get("CPU", 0)), float(n.get("Resources", {}).get("GPU", 0))) for n in nodes]
    shown = "; ".join(f"{_fmt(c)} CPU, {_fmt(g)} GPU" for c, g in have) or "no node"
    if workers == 1:
        if any(c >= cpu and g >= gpu for c, g in have):
            return
        raise UserError(f"resources {{cpu: {_fmt(cpu)}, gpu: {_fmt(gpu)}}} per trial fit no node of the Ray cluster "
                        f"(nodes: {shown}); lower `resources` in the spec or add a node that has them")
    spare = [(c - DRIVER_CPU, g) for c, g in have]  # the node that also holds the waiting Tune trial
    held = max((sum(_fits(cpu, gpu, s if i == j else h) for i, h in enumerate(have)) for j, s in enumerate(spare)),
               default=0)
    if held >= workers:
        return
    raise UserError(f"resources {{workers: {workers}, cpu: {_fmt(cpu)}, gpu: {_fmt(gpu)}}} per trial: the Ray cluster "
                    f"holds {held} such workers at most (nodes: {shown}); lower `resources.workers` or the "
                    f"per-worker `cpu`/`gpu`, or add nodes")
