"""Refuse a per-trial resource request that no node of the Ray cluster can hold, before the run starts.

Ray would leave such trials PENDING forever (its autoscaler may add nodes; a fixed cluster never does).
Only nodes alive now count; a cluster that grows later can be used by running again.
"""

from __future__ import annotations

from typing import Any

import ray

from tuner.errors import UserError


def _fmt(value: float) -> str:
    return f"{value:g}"


def check_placement(cpu: float, gpu: float, nodes: list[dict[str, Any]] | None = None) -> None:
    """UserError naming the request and every node's CPUs/GPUs when no single node fits one trial."""
    nodes = [n for n in (ray.nodes() if nodes is None else nodes) if n.get("Alive", True)]
    have = [(float(n.get("Resources", {}).get("CPU", 0)), float(n.get("Resources", {}).get("GPU", 0))) for n in nodes]
    if any(c >= cpu and g >= gpu for c, g in have):
        return
    shown = "; ".join(f"{_fmt(c)} CPU, {_fmt(g)} GPU" for c, g in have) or "no node"
    raise UserError(f"resources {{cpu: {_fmt(cpu)}, gpu: {_fmt(gpu)}}} per trial fit no node of the Ray cluster "
                    f"(nodes: {shown}); lower `resources` in the spec or add a node that has them")
