"""A trial on several workers: one Ray Train `TorchTrainer` run inside the Tune trial (`resources.workers` > 1).

Ray Train V2's pattern (Ray's user guide "Hyperparameter Tuning with Ray Tune"): the Tune function trainable
builds a `TorchTrainer` with a `ScalingConfig` and waits on `fit()`; Ray Train starts the workers and the
process group (gloo on CPU, nccl on GPUs), and `TuneReportCallback` hands rank 0's reports to Tune, so the
scheduler, the searcher and MLflow see one trial. Every worker runs the same trial loop on the same seed,
so each draws the same global batch and keeps its own shard (`shard`): `batch_size` stays the global batch,
and `methods/` averages every gradient over the workers, so the step is the global batch's. The counters
(`cost/*`, the scheduler's clock) are one worker's: optimizer steps and gradient evaluations of the trial,
not multiplied by the number of workers. Rank 0 saves the checkpoints, in Ray Train's storage under the
trial's own run name; a rerun of the trial (a retry, a resumed search) resumes from the latest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from tuner.errors import UserError, exception_line

RUN_NAME = "ray_train"  # the Ray Train run's folder inside its Tune trial's


class WorkerError(RuntimeError):
    """A Ray Train worker's own error, its rank first: what the console, the summary and MLflow show."""


def _error_line(exc: BaseException) -> str:
    """`Type: message` of a worker's error: from the traceback Ray Train may hand instead (the first line after
    its last indented `File ...` line), else the exception's type and first line."""
    lines = [line for line in str(exc).rstrip().splitlines() if line.strip()]
    if any(line.startswith("Traceback") for line in lines):
        indented = [i for i, line in enumerate(lines) if line.startswith((" ", "\t"))]
        tail = lines[indented[-1] + 1:] if indented else lines
        return (tail or lines)[0].strip()
    return exception_line(exc)


def worker_error(failures: dict[int, BaseException], workers: int) -> WorkerError:
    """One `WorkerError` naming every failed rank's own error (Ray Train's `WorkerGroupError.worker_failures`)
    instead of Ray Train's "Training failed due to worker errors:"."""
    said = "; ".join(f"rank {rank} of {workers}: {_error_line(exc)}"
                     for rank, exc in sorted(failures.items()))
    return WorkerError(said or "a worker failed (Ray Train recorded no message)")


def shard(batch: Any, rank: int, world: int) -> Any:
    """This rank's rows of every tensor of `batch` (tuples, lists, dicts nested): contiguous, equal shards."""
    if isinstance(batch, torch.Tensor):
        if batch.dim() == 0:
            return batch
        rows = batch.shape[0]
        if rows % world:
            raise UserError(f"a training batch of {rows} rows does not split into {world} equal shards "
                            f"(resources.workers); make the workload's batch size a multiple of {world}")
        size = rows // world
        return batch[rank * size:(rank + 1) * size]
    if isinstance(batch, (tuple, list)):
        return type(batch)(shard(b, rank, world) for b in batch)
    if isinstance(batch, dict):
        return {k: shard(v, rank, world) for k, v in batch.items()}
    return batch


def shard_batches(workload: Any, rank: int, world: int) -> None:
    """Make `workload.next_batch` return this rank's shard of each global batch (the seed's order is kept)."""
    global_batch = workload.next_batch
    workload.next_batch = lambda: shard(global_batch(), rank, world)


def fit(loop: Callable[[dict[str, Any]], None], config: dict[str, Any], *, workers: int, cpu: float,
        gpu: float, storage: Any, max_failures: int = 0) -> None:
    """Run `loop(config)` on `workers` Ray Train workers, each holding `cpu` CPUs and `gpu` GPUs, and wait.

    Called inside a Tune trial: rank 0's `ray.train.report` calls reach Tune (`TuneReportCallback`). `storage`:
    the Tune trial's (its `StorageContext`); the run is `RUN_NAME` in the trial's folder, so a rerun of the
    trial finds Ray Train's checkpoints there and resumes from the latest (`ray.train.get_checkpoint()`).
    Raises `WorkerError`, naming the failed ranks' own errors, when the run fails beyond `max_failures` restarts."""
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    per_worker = {"CPU": cpu, **({"GPU": gpu} if gpu > 0 else {})}
    trainer = TorchTrainer(
        loop, train_loop_config=config,
        torch_config=TorchConfig(backend="nccl" if gpu > 0 else "gloo"),
        scaling_config=ray.train.ScalingConfig(num_workers=workers, use_gpu=gpu > 0, resources_per_worker=per_worker),
        run_config=ray.train.RunConfig(name=RUN_NAME, storage_path=storage.trial_fs_path,
                                       storage_filesystem=storage.storage_filesystem, callbacks=[TuneReportCallback()],
                                       failure_config=ray.train.FailureConfig(max_failures=max_failures),
                                       # its INFO lines (worker group started, process group set up): off the console
                                       logging_config=ray.train.LoggingConfig(log_level="WARNING")))
    try:
        trainer.fit()
    except ray.train.WorkerGroupError as exc:  # its first line says only "Training failed due to worker errors:"
        raise worker_error(exc.worker_failures, workers) from None
