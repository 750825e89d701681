"""Run one trial: the report protocol every consumer reads, the training loop, the Ray trainable.

- `protocol`: a trial's values, the report keys and how a trial ended (`outcome`); no Ray, no torch.
- `trainer`: `Trainer`, the loop shared by every trial (steps, evaluation plan, reports, exact resume).
- `trainable`: `train_trial`, the Ray Tune function that runs a `Trainer` and checkpoints it.
"""
