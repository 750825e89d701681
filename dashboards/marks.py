"""How a trial's outcome is drawn, the same in every figure: completed filled, pruned hollow, diverged a cross.

A pruned trial's value is the metric where the scheduler stopped it, early in training, so it must never pass
for a full run's value: every figure that shows pruned and completed trials together draws them apart with
these marks, and its legend says what each mark is (`status_handles`, only for the outcomes drawn).
Each scatter gets a `gid` (`<method>:<outcome>`, or with the panel's name in between) that stays in the SVG, so
a test or a reader can find the points of one method and outcome in the figure itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import PathCollection
from matplotlib.lines import Line2D

from dashboards.colors import MethodStyle
from tuner.names import COMPLETED, DIVERGED, PRUNED

STATUS_LABELS = {COMPLETED: "completed (full budget)", PRUNED: "pruned (value at pruning)", DIVERGED: "diverged"}
STATUS_ORDER = (COMPLETED, PRUNED, DIVERGED)


def scatter_status(ax: Axes, x: Any, y: Any, style: MethodStyle, status: str, *, gid: str, size: float = 30,
                   alpha: float = 0.9) -> PathCollection | None:
    """Points of one method and one outcome; nothing when there are none."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if not len(x):
        return None
    if status == DIVERGED:
        kw: dict[str, Any] = {"marker": "x", "color": style.color}
    elif status == PRUNED:
        kw = {"marker": style.marker, "facecolors": "none", "edgecolors": style.color, "linewidths": 1.2}
    else:
        kw = {"marker": style.marker, "color": style.color}
    coll = ax.scatter(x, y, s=size, alpha=alpha, zorder=3, **kw)
    coll.set_gid(gid)
    return coll


def status_handles(statuses: Iterable[str]) -> list[Line2D]:
    """Legend entries (grey, so they read as outcomes, not methods) for the outcomes a figure draws."""
    present = set(statuses)
    out = []
    for status in STATUS_ORDER:
        if status not in present:
            continue
        if status == DIVERGED:
            kw: dict[str, Any] = {"marker": "x", "color": "#555555"}
        else:
            kw = {"marker": "o", "markeredgecolor": "#555555",
                  "markerfacecolor": "none" if status == PRUNED else "#555555"}
        out.append(Line2D([], [], ls="none", ms=6, label=STATUS_LABELS[status], **kw))
    return out


def method_handle(method: str, style: MethodStyle, label: str | None = None) -> Line2D:
    """A method's legend entry: its colour, marker and line style."""
    return Line2D([], [], color=style.color, marker=style.marker, ls=style.linestyle, ms=5, label=label or method)
