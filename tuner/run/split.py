"""Equal tuning budgets: one Optuna study per method, and a fixed rule for whose turn the next trial is.

With one study over `method` as a categorical, the sampler pours trials into whichever method leads
early, and a method that pays more per step, or helps late, is starved (issue 31). The benchmarkers'
protocol (Schmidt et al. 2021; AlgoPerf) gives each method the same budget and a search that learns only
from that method's trials. `MethodSplitSearch` does that behind Ray's one-searcher interface:

- one `SharpSearch` per method, each on its own study `<name>/<method>` in the experiment's journal,
  with the spec's sampler (seeded per method), queued configs, warm start and constraints; each keeps
  SharpSearch's honest tells, its Ray-id map and its orphan adoption after a killed driver;
- the next Ray trial goes to the method furthest from its quota (`quotas`: `num_samples` split evenly,
  the remainder to the first methods in spec order; a grid: each method's own points), ties in spec
  order. It is decided by what the journal says was asked, never by how trials finished, so no method
  gains or loses by the order of results, and after a restart the count goes on where it was;
- after a killed driver, orphans (Optuna trials Ray never saved) are adopted first, oldest first,
  whichever method they belong to.
"""

from __future__ import annotations

import contextlib
import pickle
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

from ray.tune.search import ConcurrencyLimiter, Searcher

from tuner.layout import JOURNAL_FILE, write_state
from tuner.run.optuna_space import grid_points
from tuner.run.searcher import SharpSearch, objectives
from tuner.spec import Spec

MIN_FREE_BYTES = 16 * 2**20  # below this, the budget is not written (`MethodSplitSearch._record`)
QUOTA_ATTR = "sharptune_budget_trials"  # a method's study: the trials it gets (optuna-dashboard shows it)
__all__ = ["MethodSplitSearch", "budget_metrics", "build_search", "quotas"]


def quotas(spec: Spec) -> dict[str, int]:
    """Trials each method gets: `num_samples` split evenly (the first methods take the remainder), or
    each method's own grid points."""
    if spec.sampler.name == "grid":
        return {m: len(grid_points(spec, m)) for m in spec.methods}
    share, extra = divmod(spec.budget.num_samples, len(spec.methods))
    return {m: share + (i < extra) for i, m in enumerate(spec.methods)}


class MethodSplitSearch(Searcher):
    """One SharpSearch per method; each Ray trial belongs to exactly one of them (`budget.split: per_method`)."""

    def __init__(self, spec: Spec, journal_path: str | Path) -> None:
        metric, mode = objectives(spec)
        super().__init__(metric=metric, mode=mode)
        self.methods = tuple(spec.methods)
        self.quotas = quotas(spec)
        self.searches = {m: SharpSearch(spec, journal_path, m) for m in self.methods}
        for m, search in self.searches.items():  # optuna-dashboard shows it beside the study's trials
            if search.study.user_attrs.get(QUOTA_ATTR) != self.quotas[m]:
                search.study.set_user_attr(QUOTA_ATTR, self.quotas[m])
        self._owner: dict[str, str] = {}  # Ray trial id -> method
        self._folder = str(Path(journal_path).parent)

    # --- whose turn ---------------------------------------------------------------------------------
    def used(self) -> dict[str, int]:
        """Trials each method's study has handed out (the journal's count, across restarts)."""
        return {m: s.asked() for m, s in self.searches.items()}

    def next_method(self) -> str:
        """An orphan's method first (oldest orphan); else the method furthest from its quota, ties in spec order."""
        orphans = [(o.datetime_start or datetime.min, i, m) for i, (m, s) in enumerate(self.searches.items())
                   for o in s.orphans()[:1]]
        if orphans:
            return min(orphans)[2]
        used = self.used()
        open_ = [m for m in self.methods if used[m] < self.quotas[m]] or list(self.methods)
        return min(open_, key=lambda m: (used[m] / max(self.quotas[m], 1), self.methods.index(m)))

    # --- Ray's searcher interface -------------------------------------------------------------------
    def set_search_properties(self, metric: Any, mode: Any, config: dict, **spec: Any) -> bool:
        return all([s.set_search_properties(metric, mode, config, **spec) for s in self.searches.values()])

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        method = self._owner.get(trial_id) or self.next_method()
        config = self.searches[method].suggest(trial_id)
        if config is not None:
            self._owner[trial_id] = method
            self._record()
        return config

    def budget(self) -> dict[str, dict[str, int]]:
        """Each method's trials handed out and its quota: `{"sgd": {"used": 3, "of": 4}}`."""
        used = self.used()
        return {m: {"used": used[m], "of": self.quotas[m]} for m in self.methods}

    def _record(self) -> None:
        """The budget into `sharptune.json`, where `tuner list` reads it.

        Skipped on a nearly full disk: a failed write frees its blocks again, and a journal write after
        that could land behind a half-written line (which Optuna can no longer read on resume); the
        journal's own failing write ends the run (`tuner.run.store_full`)."""
        with contextlib.suppress(OSError):
            if shutil.disk_usage(self._folder).free >= MIN_FREE_BYTES:
                write_state(self._folder, budget=self.budget())

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        if trial_id in self._owner:
            self.searches[self._owner[trial_id]].on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        if trial_id in self._owner:
            self.searches[self._owner[trial_id]].on_trial_complete(trial_id, result, error)

    # --- persistence: each SharpSearch pickles its id map and reconnects to the journal -------------
    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as fh:
            pickle.dump(self.__dict__, fh)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as fh:
            self.__dict__.update(pickle.load(fh))


def budget_metrics(budget: dict[str, dict[str, int]]) -> dict[str, float]:
    """The budget as the parent run's metrics: `budget/<method>/used`, `budget/<method>/left`."""
    out: dict[str, float] = {}
    for method, b in budget.items():
        out[f"budget/{method}/used"] = float(b["used"])
        out[f"budget/{method}/left"] = float(max(0, b["of"] - b["used"]))
    return out


def build_search(spec: Spec, experiment_dir: str | Path) -> ConcurrencyLimiter:
    """The searcher the runner hands to Ray under a ConcurrencyLimiter: one SharpSearch (`budget.split:
    shared`) or one per method behind `MethodSplitSearch` (`per_method`)."""
    journal = Path(experiment_dir) / JOURNAL_FILE
    search: Searcher = MethodSplitSearch(spec, journal) if spec.budget.split == "per_method" \
        else SharpSearch(spec, journal)
    return ConcurrencyLimiter(search, max_concurrent=spec.budget.max_concurrent_trials)
