"""How a run sets Ray up: a quiet, owned Ray session, the spec's trial scheduler, Ray's own loggers and a
watch for Ray's stop signal.

What each trial gets is `tuner.spec.trial_setup(spec)` (a `TrialSetup`); `tuner.run.experiment.make_trainable`
hands it to Ray with the trial's resources.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import ray
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback, TBXLoggerCallback
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, HyperBandScheduler, MedianStoppingRule

from tuner.errors import RuntimeFailure
from tuner.run.per_method_scheduler import PerMethodScheduler
from tuner.run.store_full import quiet_ray_writers

QUIET_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",  # two lines and a request per finished run on a server
    "HF_HUB_OFFLINE": "1",
    "RAY_AIR_NEW_OUTPUT": "0",
}
# TUNE_MAX_PENDING_TRIALS_PG is left to Ray ("auto"): under the searcher's ConcurrencyLimiter that is
# max_concurrent_trials, so every slot's actor starts at once. At 1, the second slot waited for the
# first trial's actor (about 8 s of one slot in the platform benchmark).


class NoTensorboard(TBXLoggerCallback):
    """Stands where Ray would add its TensorBoard logger, and logs nothing.

    sharptune's record is MLflow. Ray's TensorBoard logger only cost time on every result, and it printed
    "NaN or Inf found in input tensor." into the user's output for every diverged trial.
    """

    def __init__(self) -> None:  # no tensorboardX import, no writers
        self._trial_writer: dict = {}
        self._trial_result: dict = {}

    def log_trial_start(self, trial: Any) -> None:
        return None

    def log_trial_result(self, iteration: int, trial: Any, result: dict) -> None:
        return None

    def log_trial_end(self, trial: Any, failed: bool = False) -> None:
        return None


def logger_callbacks() -> list[Any]:
    """Ray's JSON and CSV result logs (`Result.metrics_dataframe`, which `tuner.tracking.backfill` reads after an
    MLflow outage), and no TensorBoard logger."""
    return [JsonLoggerCallback(), CSVLoggerCallback(), NoTensorboard()]


def make_scheduler(spec: Any) -> Any:
    """ASHA / HyperBand / median stopping / FIFO on the spec's clock (`cost/grad_evals` by default)."""
    s, metric, mode = spec.scheduler, spec.metric.name, spec.metric.mode
    if s.name == "asha":
        return ASHAScheduler(time_attr=s.time_attr, metric=metric, mode=mode, max_t=s.max_t,
                             grace_period=s.grace_period, reduction_factor=s.reduction_factor)
    if s.name == "hyperband":
        return HyperBandScheduler(time_attr=s.time_attr, metric=metric, mode=mode, max_t=s.max_t,
                                  reduction_factor=s.reduction_factor)
    if s.name == "median":
        return MedianStoppingRule(time_attr=s.time_attr, metric=metric, mode=mode, grace_period=s.grace_period,
                                  min_samples_required=3)
    return FIFOScheduler()


def search_scheduler(spec: Any) -> Any:
    """The search's scheduler: with `budget.split: per_method`, one `make_scheduler` per method, so a trial
    is compared only with its own method's (`tuner.run.per_method_scheduler`); else one for all."""
    if spec.budget.split == "per_method" and spec.scheduler.name != "fifo":
        return PerMethodScheduler(partial(make_scheduler, spec))
    return make_scheduler(spec)


class RayStopWatch(logging.Filter):
    """Knows that Ray stopped a `fit()` on a signal, and keeps Ray's resume advice off the screen.

    On Ctrl-C Ray ends `fit()` normally and says so only in two log lines ("Stop signal received",
    "... Resume experiment with: Tuner.restore(...)"). A trial it stops then looks terminated, so the
    results alone cannot tell a stopped search from a finished one. Our own resume line replaces Ray's.
    """

    def __init__(self) -> None:
        super().__init__("sharptune-ray-stop")
        self.stopped = False

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if text.startswith("Stop signal received") or "Tuner.restore(" in text:
            self.stopped = True
            return False
        return True


RAY_STOP = RayStopWatch()


@contextmanager
def ray_session(address: str | None, num_cpus: int | None = None,
                runtime_env: dict[str, Any] | None = None) -> Iterator[None]:
    """Attach to `address` (or RAY_ADDRESS), else start a private local Ray; always shut our Ray down.

    `runtime_env` is the job's (a user's workload code shipped to every worker); a caller that owns
    the Ray session ships its own.
    """
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    tune_logger = logging.getLogger("ray.tune.tune")
    if RAY_STOP not in tune_logger.filters:
        tune_logger.addFilter(RAY_STOP)
    quiet_ray_writers()
    if ray.is_initialized():  # a caller (tests, notebooks) owns the session
        yield
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    try:
        if address:
            ray.init(address=address, include_dashboard=False, logging_level="WARNING", log_to_driver=True,
                     runtime_env=runtime_env)
        else:
            # Ray 2.60 turns token authentication on for a new local cluster (good) and warns that it did
            # on every start; keep stderr for errors (RAY_AUTH_MODE must be set before ray is imported).
            logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
            # address="local": without it Ray joins any cluster that `ray start` left on this machine.
            ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, logging_level="WARNING",
                     _node_ip_address="127.0.0.1", runtime_env=runtime_env)
    except Exception as exc:  # Ray raises a bare Exception when a node times out starting
        raise RuntimeFailure(f"cannot start or reach Ray{f' at {address}' if address else ''}: {exc}") from None
    try:
        yield
    finally:
        ray.shutdown()
