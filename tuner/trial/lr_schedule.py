"""The trial's learning-rate schedule (`lr_schedule:` in the spec): a multiplier of every param group's lr.

It is the trial's, not a method's: set once per spec, the same for every method, applied by the `Trainer`
once per optimizer step over the trial's length in steps (`tuner.hparams.horizon_steps`, the horizon the
methods' own schedules get). Not to be confused with the methods' hyperparameters `schedule` (BAR's
α_t = μ0 s(t/T)) and `rho_schedule` (SAM's ρ_t): those are searched like any hyperparameter and live in
the optimizer. This one rewrites `param_groups[i]["lr"]`, which every method shares with its base
optimizer, so it reaches them all: the base step, BAR's η_t, IRE's κ decay.

Plain data (no torch): `TrialSetup` carries it; `tuner.trial.lr_scheduler` turns it into torch's `LambdaLR`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

LR_SCHEDULES = ("constant", "cosine", "linear")


@dataclass(frozen=True)
class LrSchedule:
    """`name`: the shape after warm-up; `warmup`: the fraction of the trial's steps that ramp linearly from 0.

    With T steps and W = round(warmup · T): step t < W gets t / W of the lr (the first step has lr 0, as
    in Hugging Face's warm-up schedules), then, with p = (t − W) / (T − W) clipped to 1: constant 1,
    linear 1 − p, cosine ½(1 + cos πp). Without warm-up, cosine is the papers' lr · ½(1 + cos(πt/T)).
    """

    name: str = "constant"
    warmup: float = 0.0

    def __post_init__(self) -> None:
        if self.name not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule.name: {self.name!r} is not one of {', '.join(LR_SCHEDULES)}")
        if not 0.0 <= self.warmup < 1.0:
            raise ValueError(f"lr_schedule.warmup: {self.warmup!r} is not a fraction in [0, 1)")

    @property
    def is_constant(self) -> bool:
        """Whether every step gets the configured lr (nothing to apply: training is as without a schedule)."""
        return self.name == "constant" and self.warmup == 0.0

    def warmup_steps(self, horizon: int) -> int:
        """W: the steps of the linear ramp in a trial of `horizon` steps."""
        return round(self.warmup * horizon)

    def factor(self, step: int, horizon: int) -> float:
        """The multiplier of the configured lr at optimizer step `step` (0-based) of `horizon` steps."""
        warm = self.warmup_steps(horizon)
        if step < warm:
            return step / warm
        if self.name == "constant":
            return 1.0
        progress = min((step - warm) / max(1, horizon - warm), 1.0)
        return 1.0 - progress if self.name == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "warmup": self.warmup}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> LrSchedule:
        """From `to_dict()`; None or {} is the constant schedule (results written before the key existed)."""
        return cls(str(data.get("name", "constant")), float(data.get("warmup", 0.0))) if data else cls()


CONSTANT = LrSchedule()
