"""A trial scheduler per method: ASHA (HyperBand, the median rule) compares a trial only with its own method.

One ASHA across methods compares trials at equal grad evals early in training, where a method that
pays two gradients a step (SAM) or that helps late (IRE starts after a third of training) looks worse by
design, and it stopped every SAM trial of the README's own runs (issue 31). `PerMethodScheduler` keeps
one inner scheduler per method (whatever `tuner.run.ray_setup.make_scheduler` builds), made on the
method's first trial, and hands each call to the trial's method's scheduler with a view of the Ray
controller that shows only that method's trials (the median rule reads the other live trials).

So each method's rungs fill with its own trials, and every method has a trial that runs its whole budget
(ASHA always lets the first trial at a rung through, then the top 1/rf of each rung).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from tuner.trial.protocol import trial_values

__all__ = ["PerMethodScheduler", "trial_method"]


def trial_method(trial: Trial) -> str:
    """The method a Ray trial tunes (from its config; "" for a trial Ray holds no config for)."""
    return str(trial_values(trial.config).get("method", ""))


class _MethodView:
    """The Ray controller as one method's scheduler sees it: only that method's trials."""

    def __init__(self, controller: Any, method: str) -> None:
        self._controller, self._method = controller, method

    def get_trials(self) -> list[Trial]:
        return [t for t in self._controller.get_trials() if trial_method(t) == self._method]

    def get_live_trials(self) -> set[Trial]:
        return {t for t in self._controller.get_live_trials() if trial_method(t) == self._method}

    def __getattr__(self, name: str) -> Any:  # pause_trial, stop_trial, ...: the controller's own
        return getattr(self._controller, name)


class PerMethodScheduler(FIFOScheduler):
    """One inner scheduler per method, built by `factory()` on the method's first trial."""

    def __init__(self, factory: Callable[[], TrialScheduler]) -> None:
        super().__init__()
        self._factory = factory
        self._inner: dict[str, TrialScheduler] = {}
        self._properties: tuple[Any, Any, dict[str, Any]] | None = None
        probe = factory()
        self._metric = probe.metric
        # HyperBand takes results one by one; Ray buffers them only where every scheduler may
        self._supports_buffered_results = probe.supports_buffered_results

    def scheduler_of(self, method: str) -> TrialScheduler:
        """The method's scheduler (made now if this is its first trial)."""
        if method not in self._inner:
            inner = self._factory()
            if self._properties is not None:
                metric, mode, spec = self._properties
                inner.set_search_properties(metric, mode, **spec)
            self._inner[method] = inner
        return self._inner[method]

    def _for(self, controller: Any, trial: Trial) -> tuple[TrialScheduler, _MethodView]:
        method = trial_method(trial)
        return self.scheduler_of(method), _MethodView(controller, method)

    def set_search_properties(self, metric: Any, mode: Any, **spec: Any) -> bool:
        self._properties = (metric, mode, spec)
        probe = self._factory()
        ok = probe.set_search_properties(metric, mode, **spec)
        self._metric = probe.metric
        return ok

    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        inner, view = self._for(tune_controller, trial)
        inner.on_trial_add(view, trial)

    def on_trial_error(self, tune_controller: Any, trial: Trial) -> None:
        inner, view = self._for(tune_controller, trial)
        inner.on_trial_error(view, trial)

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict) -> str:
        inner, view = self._for(tune_controller, trial)
        return inner.on_trial_result(view, trial, result)

    def on_trial_complete(self, tune_controller: Any, trial: Trial, result: dict) -> None:
        inner, view = self._for(tune_controller, trial)
        inner.on_trial_complete(view, trial, result)

    def on_trial_remove(self, tune_controller: Any, trial: Trial) -> None:
        inner, view = self._for(tune_controller, trial)
        inner.on_trial_remove(view, trial)

    def choose_trial_to_run(self, tune_controller: Any) -> Trial | None:
        """Each method's scheduler proposes; the trial Ray was given first runs first (FIFO across methods)."""
        order = {id(t): i for i, t in enumerate(tune_controller.get_trials())}
        picks = [inner.choose_trial_to_run(_MethodView(tune_controller, m)) for m, inner in self._inner.items()]
        picks = [t for t in picks if t is not None]
        return min(picks, key=lambda t: order.get(id(t), len(order))) if picks else None

    def debug_string(self) -> str:
        return "; ".join(f"{m}: {inner.debug_string()}" for m, inner in self._inner.items()) or "per method"
