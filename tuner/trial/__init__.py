"""Run one trial: the report protocol every consumer reads, the training loop, the Ray trainable.

- `protocol`: a trial's values, the report keys and how a trial ended (`outcome`); no Ray, no torch.
- `setup`: `TrialSetup`, what every trial of an experiment gets, and its `EvalPlan`; no Ray, no torch.
- `build`: the trial's workload and optimizer from its setup and values (the trainable's and the preflight's).
- `trainer`: `Trainer`, the loop shared by every trial (steps, evaluation plan, reports, exact resume).
- `trainable`: `train_trial`, the Ray Tune function that runs a `Trainer` and checkpoints it.
"""
