"""The Ray Tune function trainable: one trial = one workload + one optimizer + the shared Trainer.

The driver hands every trial the same `setup` (`TrialSetup`, `tuner.spec.trial_setup(spec)`) and
Ray hands it the sampled config (the trial's values, `tuner.trial.protocol`). The trial reports every
`eval_every` steps (never every step). It evaluates the full validation split where the scheduler
reads the primary metric (`setup.eval_plan`, see `tuner.trial.trainer.EvalPlan`), a fixed subset at
`CURVE_POINTS` curve points (`eval_subset/...`), diagnostics at the scheduler's points and at
`DIAG_POINTS` more, and nothing in between. It checkpoints at the scheduler's points and at least every
`CHECKPOINT_S` seconds, so a trial whose process dies resumes exactly from its last checkpoint
(re-running, with the same seed and batches, the steps after it).
What its reports carry is the protocol's (`COMPLETE_KEY`, `DIVERGED_KEY`, `FILLED_KEY`, `NODE_KEY`).

A resumed search hands it `finished`: the trials the Optuna journal finished after Ray last saved its
state (`tuner.run.searcher.finished_records`). Such a trial does not train again: it replays its
recorded last report (or its recorded error) and ends, so the restored Ray, the scheduler and MLflow see
it end as it ended before.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune

from tuner.names import COMPLETE_KEY, DEVICE_KEY, DIVERGED_KEY, GPU_KEY, GRAD_EVALS, NODE_KEY, REPLAYED_KEY, TRAIN_LOSS
from tuner.trial import data_parallel, quiet_exit
from tuner.trial.build import build_trial, trial_horizon
from tuner.trial.faults import maybe_fault
from tuner.trial.protocol import ADOPT_KEY, RecordedError, trial_values, with_required
from tuner.trial.setup import TrialSetup
from tuner.trial.trainer import Diverged, Trainer

CHECKPOINT_FILE = "trainer.pt"
CHECKPOINT_S = 60.0  # longest wall time between checkpoints besides the scheduler points


def replay(record: Mapping[str, Any]) -> None:
    """End a trial the journal already finished, exactly as it ended: its last report, or its error."""
    if "result" not in record:
        raise RecordedError(record.get("error") or "errored before the driver was stopped (no message recorded)")
    tune.report({**{k: (math.nan if v is None else v) for k, v in record["result"].items()}, REPLAYED_KEY: 1.0})


Report = Callable[[dict[str, Any], "str | None"], None]  # (metrics, checkpoint folder or None)


def _tune_report(metrics: dict[str, Any], folder: str | None = None) -> None:
    tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder) if folder else None)


def train_trial(config: dict[str, Any], setup: TrialSetup,
                finished: Mapping[str, Mapping[str, Any]] | None = None) -> None:
    """Ray Tune function trainable (wrap with `tune.with_parameters(train_trial, setup=..., finished=...)`)."""
    quiet_exit.install()  # Ray's SIGTERM at shutdown must not print a traceback (see quiet_exit)
    for noisy in ("ray.train", "ray.tune"):  # "Checkpoint successfully created" on every report
        logging.getLogger(noisy).setLevel(logging.WARNING)
    values = trial_values(config)
    if finished:
        record = finished.get(values.get(ADOPT_KEY) or tune.get_context().get_trial_id())
        if record is not None:
            return replay(record)
    if setup.workers > 1:  # one Ray Train run of `train_worker` on every worker (tuner.trial.data_parallel)
        storage = tune.get_context().get_storage()  # the trial's folder in the experiment's storage: a rerun resumes
        return data_parallel.fit(train_worker, {"values": values, "setup": setup}, workers=setup.workers,
                                 cpu=setup.cpu, gpu=setup.gpu, storage=storage)
    return run_trial(values, setup, tune.get_checkpoint, _tune_report)


def train_worker(config: dict[str, Any]) -> None:
    """One Ray Train worker of a data-parallel trial: the trial on this rank's shard of every batch.

    Every rank reports (Ray Train wants them all); rank 0's metrics reach Tune, and rank 0 alone saves. Every
    rank reports at the same steps, so `train/loss` becomes the mean of the ranks' shard losses there (one
    all-reduce of a scalar a report): the global batch's loss, as one process would report it."""
    import ray.train
    import ray.train.torch
    import torch.distributed as dist

    quiet_exit.install()
    for noisy in ("ray.train", "ray.tune"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Ray 2.60 logs "Reporting training result ..." (every report of every rank) at INFO through a logger named
    # by its file's path, which propagates to the root logger Ray Train set to INFO on its workers; a trial in
    # one process leaves the root at Python's WARNING
    logging.getLogger().setLevel(logging.WARNING)
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    if config["setup"].gpu > 0:  # "cuda" is then this worker's own GPU among those Ray Train shows it
        torch.cuda.set_device(ray.train.torch.get_device())

    def report(metrics: dict[str, Any], folder: str | None = None) -> None:
        if TRAIN_LOSS in metrics:
            loss = torch.tensor([metrics[TRAIN_LOSS]], dtype=torch.float64)
            dist.all_reduce(loss)
            metrics = {**metrics, TRAIN_LOSS: float(loss) / world}
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder) if folder else None)
    run_trial(config["values"], config["setup"], ray.train.get_checkpoint, report,
              shard=(rank, world), saves=rank == 0)


def run_trial(values: dict[str, Any], setup: TrialSetup, get_checkpoint: Callable[[], Any], report: Report, *,
              shard: tuple[int, int] | None = None, saves: bool = True) -> None:
    """The trial's loop: build, resume from `get_checkpoint()`, train, `report` (with a checkpoint folder where
    `saves`). `shard` (rank, world): this worker keeps its rank's rows of every global batch."""
    torch.set_num_threads(setup.threads)
    workload, optimizer, _ = build_trial(setup, values)
    if shard is not None:
        data_parallel.shard_batches(workload, *shard)
    budget = setup.trial_grad_evals
    trainer = Trainer(workload, optimizer, eval_every=setup.eval_every, max_grad_evals=budget,
                      plan=setup.eval_plan, precision=setup.precision, lr_schedule=setup.lr_schedule,
                      horizon=trial_horizon(setup, values))
    checkpoint = get_checkpoint()
    if checkpoint is not None:
        try:
            with checkpoint.as_directory() as folder:
                state = torch.load(Path(folder) / CHECKPOINT_FILE, weights_only=False)
        except (OSError, RuntimeError, EOFError) as exc:
            # A driver killed between Ray pruning old checkpoints and saving its state can point at a
            # deleted one: start over (same seed, same steps); the tracker skips steps it already holds.
            logging.getLogger(__name__).warning("checkpoint %s unreadable (%s); restarting the trial", checkpoint, exc)
            checkpoint = None  # nothing was loaded: the fresh trainer starts at step 0
        else:
            trainer.load_state_dict(state)
    required = setup.required_metrics
    node_id = ray.get_runtime_context().get_node_id()
    placed = {GPU_KEY: ",".join(str(i) for i in ray.get_gpu_ids()), DEVICE_KEY: str(workload.device)}
    fault = setup.fault
    last: dict[str, Any] | None = None
    saved_at = time.monotonic()
    try:
        for step_report in trainer.run():
            maybe_fault(fault, values["method"], last[GRAD_EVALS] if last else -1.0)
            metrics = with_required(step_report, required)
            metrics[NODE_KEY] = node_id
            metrics.update(placed)
            if step_report.get(DIVERGED_KEY) == 1.0:
                last = metrics
                report(metrics, None)  # no checkpoint of a broken state
                continue
            if metrics[GRAD_EVALS] >= budget:
                metrics[COMPLETE_KEY] = 1.0
            if trainer.last_at_point or time.monotonic() - saved_at >= CHECKPOINT_S:
                with tempfile.TemporaryDirectory(prefix="sharptune-ckpt-") as folder:
                    if saves:
                        torch.save(trainer.state_dict(), Path(folder) / CHECKPOINT_FILE)
                    report(metrics, folder if saves else None)
                saved_at = time.monotonic()
            else:
                report(metrics, None)
            last = metrics
    except Diverged:
        return  # the diverged report is out; ending normally keeps Ray from retrying a hopeless config
    if last is not None and last.get(COMPLETE_KEY) != 1.0 and last.get(DIVERGED_KEY) != 1.0:
        # Ended by a step limit below the grad-eval budget (or resumed at the end): say it is complete.
        report({**last, COMPLETE_KEY: 1.0}, None)
    elif last is None and checkpoint is not None:
        # Resumed from the checkpoint of its last report: report it again so the trial ends complete.
        report({**trainer.final_report(), COMPLETE_KEY: 1.0, NODE_KEY: node_id, **placed}, None)
