"""The report protocol of a trial: what the searcher, the tracker, the progress lines and the results read.

A trial's *values* are one plain dict: `{"method": m, <hyperparameters>, <workload overrides>}` and,
for runs the platform adds itself, private keys that start with `_` (`_seed`, `_phase`, `_rank`,
`_source`, `ADOPT_KEY`; a confirmation run's values arrive wrapped as `{"_point": values}`). `trial_values` unwraps
them, `public_values` drops the private keys, `tuner.hparams.split_values` splits the rest.

- `COMPLETE_KEY = 1.0` on the report that spent the whole budget (ASHA may stop a trial on that very
  report, so the marker must ride on it, not on a later one);
- `DIVERGED_KEY = 1.0` on the last report of a diverged trial, which then ends normally (no retry);
- `FILLED_KEY`: the required metrics a report did not compute, comma-separated; they are NaN there
  only because Ray insists every report carries them (ASHA never reads them: it reads the first
  report at or past each rung, which evaluates the full split), and the tracker does not log them;
- anything else that ends a trial is a prune (scheduler, time budget) or an error (an exception).

The metric names every report carries, the report keys above and the outcomes are `tuner.names`'s (written
once there; spec, trial, runner and results all import them from there, not through one another.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from tuner.names import (
    COMPLETE_KEY,
    COMPLETED,
    DEVICE_KEY,
    DIVERGED,
    DIVERGED_KEY,
    ERRORED,
    FILLED_KEY,
    GPU_KEY,
    METRIC_PREFIXES,
    NODE_KEY,
    PRUNED,
)

# a resumed search's trial that takes over an Optuna trial its killed driver asked (tuner.run.searcher):
# the Ray trial id that trial had, the key of its record in the trainable's `finished` map
ADOPT_KEY = "_adopt"


def final_record(result: Mapping[str, Any] | None) -> dict[str, Any]:
    """What a finished trial's last report must keep so a resumed search can replay it without training:
    its metrics and the protocol's markers, as plain JSON values (the Optuna journal stores them)."""
    keep = (COMPLETE_KEY, DIVERGED_KEY, FILLED_KEY, NODE_KEY, DEVICE_KEY, GPU_KEY)
    out: dict[str, Any] = {}
    for key, value in (result or {}).items():
        if not (key.startswith(METRIC_PREFIXES) or key in keep):
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            continue
        out[key] = value if isinstance(value, str) or math.isfinite(value) else None
    return out


class RecordedError(RuntimeError):
    """A trial that errored before its driver was stopped, replayed on resume: the message is the recorded
    one (`Type: first line`), shown as it is, not as this class's name."""


def trial_values(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """The trial's values from Ray's config: a confirmation run wraps its prepared values in `_point`.

    A trial whose actor died before it started has no config in Ray's records (None): no values.
    """
    if not config:
        return {}
    inner = config.get("_point")
    return dict(inner) if isinstance(inner, Mapping) else dict(config)


def public_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """What a user set: method, sampled hyperparameters, workload overrides (not `_seed`, `_phase`, ...)."""
    return {k: v for k, v in values.items() if not str(k).startswith("_")}


def outcome(result: Mapping[str, Any] | None, error: bool = False) -> str:
    """How a trial ended, from its last result: completed, pruned, diverged or errored."""
    if error:
        return ERRORED
    result = result or {}
    if result.get(DIVERGED_KEY) == 1.0:
        return DIVERGED
    if result.get(COMPLETE_KEY) == 1.0:
        return COMPLETED
    return PRUNED


def with_required(report: Mapping[str, Any], required: tuple[str, ...]) -> dict[str, Any]:
    """The report with every required metric present: NaN where it was not computed, named in FILLED_KEY."""
    filled = [k for k in required if k not in report]
    metrics: dict[str, Any] = {k: math.nan for k in filled}
    metrics.update(report)
    if filled:
        metrics[FILLED_KEY] = ",".join(filled)
    return metrics
