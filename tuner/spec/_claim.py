"""Reader of `claim:`, what a claim spec reproduces (issue 32): its quantity, per setting, and the paper's number.

    claim:
      metric: diag/lambda_over_edge     # a logged metric; each run's last value (measure: final)
      by: [lr, rho]                     # the parameters (or stress options) that make a setting
      source: Long & Bartlett 2024      # whose claim it is
      expect: {sam: [0.99, 1.09]}       # per method: a number, a [low, high] band, or the paper's words

`measure: to_target` instead compares the grad evals each method's winner takes to reach the summary's
target (the spec's `metric.target`, else the first method's best), as a ratio to the first method's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tuner.names import METRIC_PREFIXES
from tuner.space import Param
from tuner.spec._reader import _Block, _choice, _kind, _list_of, _string
from tuner.spec.model import Claim, Confirm, Objective
from tuner.value_rules import is_number

MEASURES = ("final", "to_target")
KEYS = ("metric", "by", "source", "expect", "measure")


def _expectation(b: _Block, key: str, value: Any) -> float | tuple[float, float] | str:
    if is_number(value) or isinstance(value, str) and value.strip():
        return float(value) if is_number(value) else value
    if isinstance(value, list) and len(value) == 2 and all(map(is_number, value)) and value[0] <= value[1]:
        return float(value[0]), float(value[1])
    b.fail(key, f"must be the paper's number, a [low, high] band or its words, got {value!r}",
           "0.5, [0.99, 1.09] or \"stays near its start\"")


def parse_claim(top: _Block, metric: Objective, methods: tuple[str, ...], parameters: Mapping[str, Param],
                confirm: Confirm | None) -> Claim | None:
    """The spec's `claim`, checked against its methods and parameters; None without one."""
    if not top.has("claim"):
        return None
    b = top.block("claim", KEYS)
    measure = b.take("measure", _choice(MEASURES), "final")
    name = b.take("metric", _string(), metric.name)
    if not name.startswith(METRIC_PREFIXES):
        b.fail("metric", f"unknown metric {name!r}", "names starting with " + ", ".join(METRIC_PREFIXES))
    if measure == "to_target" and name != metric.name:
        b.fail("metric", f"measure to_target reads the spec's metric {metric.name!r}, not {name!r}",
               f"leave it out or write {metric.name}")
    settings = [*parameters, *(confirm.stress if confirm else ())]
    by = b.take("by", _list_of(_choice(settings), non_empty=False), ())
    if measure == "to_target" and by:
        b.fail("by", "measure to_target has one value per method (its winner's), no settings", "leave it out")
    raw = b.take("expect", lambda blk, k, v: v, {})
    if not isinstance(raw, dict):
        b.fail("expect", f"must be a mapping {{method: value}}, got {_kind(raw)}")
    inner = b.block("expect", methods, "the spec's methods")
    expect = {m: inner.take(m, _expectation) for m in raw}
    return Claim(metric=name, source=b.take("source", _string()), by=by, measure=measure, expect=expect)
