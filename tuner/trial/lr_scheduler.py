"""An `LrSchedule` on an optimizer's param groups: torch's `LambdaLR`, one step per optimizer step.

The trainer and a user's own loop (examples/train_vision_with_exported_config.py) build it here, so an
exported winner trains with the lrs its trial had. The multiplier is a Python float computed on the host
from the step count: setting it never waits on the device.
"""

from __future__ import annotations

import functools
from typing import Any

from torch.optim.lr_scheduler import LambdaLR

from tuner.trial.lr_schedule import LrSchedule


def lr_scheduler(optimizer: Any, schedule: LrSchedule, horizon: int) -> LambdaLR:
    """`LambdaLR` giving step t the lr `base_lr · schedule.factor(t, horizon)` in every param group.

    Call its `step()` after each `optimizer.step()`. `optimizer` is a `methods` optimizer (or any torch
    optimizer): its `param_groups` are its base optimizer's, so the base step and the method's own reads
    of the lr (BAR's η_t, IRE's κ decay) all see the scheduled lr. Its `state_dict` is plain data.
    """
    if horizon < 1:
        raise ValueError(f"the lr schedule's horizon must be at least 1 step, got {horizon}")
    # a partial, not a lambda: LambdaLR's state_dict keeps a callable object's (empty) __dict__, never code
    return LambdaLR(optimizer, functools.partial(schedule.factor, horizon=horizon))
