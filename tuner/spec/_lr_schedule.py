"""Reader of the spec's `lr_schedule: {name: constant|cosine|linear, warmup: 0.0}` (the trial's lr schedule).

Not a method's `schedule` (BAR's α_t) nor its `rho_schedule`: those are hyperparameters under `parameters`.
Left out, the schedule is constant without warm-up: every spec written before the key trains as it did.
"""

from __future__ import annotations

from tuner.spec._reader import _Block, _choice, _number
from tuner.trial.lr_schedule import CONSTANT, LR_SCHEDULES, LrSchedule


def parse_lr_schedule(top: _Block) -> LrSchedule:
    """`top`'s `lr_schedule` block; a bad value fails on one line naming the field."""
    if not top.has("lr_schedule"):
        return CONSTANT
    b = top.block("lr_schedule", ("name", "warmup"), "a mapping such as {name: cosine, warmup: 0.05}")
    name = b.take("name", _choice(LR_SCHEDULES), "constant")
    warmup = float(b.take("warmup", _number(0.0, 1.0), 0.0))
    if warmup >= 1.0:
        b.fail("warmup", "a warm-up of the whole trial leaves no steps at the scheduled lr",
               "a fraction of the trial's steps in [0, 1), such as 0.05")
    return LrSchedule(name, warmup)
