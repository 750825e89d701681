"""What a person watching `tuner run` reads: a short header, then every ~15 s where the search stands.

Each progress block names every running trial (method, grad evals done of the budget, latest
metric), counts the finished trials by outcome, and gives an ETA for the search and for the
confirmation phase. Work is counted in gradient evaluations (the budget's own unit, so it holds across
methods of different cost), and time as a `CostModel` fitted on the trials so far:

- a trial takes `start + grad_evals / rate` seconds in its slot: `start` is its fixed cost (set-up,
  first evaluation, Ray's hand-over between trials), `rate` the speed of its training. Both come from a
  least-squares line through the finished trials' (grad evals, seconds); ASHA's early stops give that
  line its spread. With too few finished trials the rate is the mean speed of the trials so far and
  the fixed cost is 0. A single rate for all work made short (pruned) trials look slow per grad eval,
  and overestimated by half the confirmation phase, whose runs all go the whole budget;
- a running trial still needs E[final | reached w] − w grad evals, the mean final grad evals of the
  finished trials that got at least as far (ASHA stops most trials early; a trial past a rung tends
  to go on), averaged the same way with what ASHA predicts (`asha_final`), else the budget;
- a trial not started yet needs the mean final grad evals of the latest third of the finished trials
  (ASHA promotes the first trials at a rung easily and the later ones less, so the first to finish ran
  longer than those to come), averaged with what ASHA's rungs and reduction factor predict
  (`asha_final`, weighted as `PRIOR_WEIGHT` trials), or the budget without ASHA;
- the jobs go to the earliest free of the slots, as Ray hands them out; the confirmation phase runs
  its configs to the full budget, with the search's cost model until its own runs finish, then with
  their rate averaged with the search's (weighted as `PRIOR_RUNS` runs): its first runs also paid the
  phase's start-up (new actors, models loaded again).
"""

from __future__ import annotations

import heapq
import json
import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ray.tune import Callback

from tuner.names import COMPLETED, DIVERGED, ERRORED, GRAD_EVALS, OUTCOMES, PRUNED
from tuner.run.trial_errors import error_line, with_hint
from tuner.trial.protocol import outcome, public_values, trial_values
from tuner.value_rules import goal_sign

EVALS = GRAD_EVALS
DEFAULT_EVERY_S = 15.0
RECENT_MIN = 4  # finished trials at least that set what a trial not started yet will take
PRIOR_RUNS = 4  # runs of 1000 grad evals the phase before's rate counts as, once a run of this phase ends
PRIOR_WEIGHT = 8.0  # finished trials ASHA's prediction (`asha_final`) counts as: the first ones pass every rung
QUIET_EVERY_S = 60.0


@dataclass(frozen=True)
class TrialView:
    """One trial as the ETA sees it: method, grad evals so far, latest metric, finished or not, and the
    seconds it has held its slot (None where unknown)."""

    method: str
    grad_evals: float
    value: float | None
    finished: bool
    seconds: float | None = None


@dataclass(frozen=True)
class CostModel:
    """Seconds a trial holds its slot: `start + grad_evals / rate`."""

    start: float
    rate: float  # grad evals per second in one slot

    def seconds(self, grad_evals: float, *, started: bool = False) -> float:
        return (0.0 if started else self.start) + grad_evals / self.rate


def fit_cost(trials: Sequence[TrialView], prior: CostModel | None = None) -> CostModel | None:
    """The `CostModel` of the trials so far (module docstring); `prior` (the phase before) until one of
    this phase's trials finishes. None before any work is done."""
    done = [(t.grad_evals, t.seconds) for t in trials if t.finished and t.seconds and t.grad_evals > 0]
    if len(done) >= 2 and max(e for e, _ in done) > 1.5 * min(e for e, _ in done):
        mean_e, mean_s = statistics.fmean(e for e, _ in done), statistics.fmean(s for _, s in done)
        slope = sum((e - mean_e) * (s - mean_s) for e, s in done) / sum((e - mean_e) ** 2 for e, _ in done)
        intercept = mean_s - slope * mean_e
        if slope > 0 and intercept >= 0:
            return CostModel(intercept, 1.0 / slope)
    if not done and prior is not None:
        return prior  # the first minutes of a phase load models: they do not set its rate
    start = prior.start if prior is not None else 0.0
    seen = done or [(t.grad_evals, t.seconds) for t in trials if t.seconds and t.grad_evals > 0]
    evals = sum(e for e, _ in seen)
    seconds = sum(max(s - start, 0.5 * s) for _, s in seen)
    if prior is not None and evals > 0:  # the phase's first runs also paid its start-up: the prior weighs
        evals, seconds = evals + PRIOR_RUNS * 1000.0, seconds + PRIOR_RUNS * 1000.0 / prior.rate  # as 4 runs
    return CostModel(start, evals / seconds) if evals > 0 and seconds > 0 else prior


def asha_final(rungs: Sequence[float], factor: float) -> Callable[[float], float]:
    """E[final grad evals | reached w] under ASHA before any trial has finished: a trial goes on to the
    next rung, and past each later one with chance 1/factor (the share ASHA promotes). `rungs` end at
    `max_t`."""
    points = sorted(float(r) for r in rungs)

    def expect(reached: float) -> float:
        above = [r for r in points if r > reached]
        if not above:
            return reached
        final, chance = above[0], 1.0
        for low, high in zip(above, above[1:], strict=False):
            chance /= factor
            final += (high - low) * chance
        return final
    return expect


def remaining_jobs(trials: Sequence[TrialView], total: int, budget: float,
                   expect: Callable[[float], float] | None = None) -> list[tuple[float, bool]]:
    """(grad evals, started) each trial of the phase still needs (module docstring): running, then to come.

    `expect(w)`: the final grad evals of a trial at w while no finished trial tells (`asha_final`; the
    budget without it)."""
    finals = [t.grad_evals for t in trials if t.finished]
    recent = finals[-max(RECENT_MIN, len(finals) // 3):]  # Ray's order: the latest trials last
    weight = PRIOR_WEIGHT if expect is not None else 0.0
    guess = expect or (lambda _: budget)

    def blend(seen: list[float], reached: float) -> float:
        if not seen and not weight:
            return guess(reached)
        return (sum(seen) + weight * guess(reached)) / (len(seen) + weight)
    typical = blend(recent, 0.0)
    jobs = []
    for t in trials:
        if t.finished:
            continue
        expected = blend([f for f in finals if f >= t.grad_evals], t.grad_evals)
        jobs.append((max(0.0, min(budget, expected) - t.grad_evals), True))
    return jobs + [(typical, False)] * max(0, total - len(trials))


def remaining_evals(trials: Sequence[TrialView], total: int, budget: float,
                    expect: Callable[[float], float] | None = None) -> float:
    """Grad evals the phase still needs, all trials together."""
    return sum(e for e, _ in remaining_jobs(trials, total, budget, expect))


def makespan(jobs: Sequence[float], slots: int) -> float:
    """Time until the last job ends when each job takes the earliest free of `slots` (Ray's order).

    At the tail fewer trials than slots are left, and the phase runs slower than its aggregate rate.
    """
    free = [0.0] * max(1, slots)
    for job in jobs:
        heapq.heapreplace(free, free[0] + job)
    return max(free)


def eta_seconds(trials: Sequence[TrialView], total: int, budget: float, *, slots: int = 1,
                prior: CostModel | None = None, expect: Callable[[float], float] | None = None) -> float | None:
    """Seconds until the phase ends under the fitted `CostModel`; None before any work is done."""
    return eta_under(fit_cost(trials, prior), trials, total, budget, slots=slots, expect=expect)


def eta_under(model: CostModel | None, trials: Sequence[TrialView], total: int, budget: float, *, slots: int = 1,
              expect: Callable[[float], float] | None = None) -> float | None:
    """`eta_seconds` with the cost model already fitted."""
    if model is None:
        return None
    jobs = [model.seconds(e, started=started) for e, started in remaining_jobs(trials, total, budget, expect)]
    return makespan(jobs, slots)


def fmt_duration(seconds: float | None) -> str:
    """`45s`, `2m35s` (to 5 s under 10 minutes), `12m`, `1h05m`; `?` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f}s"
    rounded = int(5 * round(seconds / 5))
    if rounded < 600:
        return f"{rounded // 60}m{rounded % 60:02d}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def fmt_value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "-"


def budget_line(trials: Sequence[Any], quotas: Mapping[str, int]) -> str:
    """Each method's trials handed out (Ray holds them: running, finished or waiting) of its quota, and
    what it has left: `sgd 3/4 (1 left), sam 4/4 (0 left)`."""
    used = {m: 0 for m in quotas}
    for t in trials:
        method = trial_values(t.config).get("method")
        if method in used:
            used[method] += 1
    return ", ".join(f"{m} {used[m]}/{q} ({max(0, q - used[m])} left)" for m, q in quotas.items())


class Progress(Callback):
    """Ray Tune callback in the driver: trial ends as they happen, a progress block every `every_s`.

    `phase` is "search" or "confirm"; `confirm_runs` (search only) sizes the confirmation ETA.
    """

    def __init__(self, *, metric: str, goal: str, total: int, budget: float, phase: str = "search",
                 confirm_runs: int = 0, slots: int = 1, prior: CostModel | None = None,
                 rungs: Sequence[float] = (), factor: float = 0.0, quotas: Mapping[str, int] | None = None,
                 every_s: float = DEFAULT_EVERY_S, write: Callable[[str], None] | None = None) -> None:
        self.metric, self.goal, self.total, self.budget = metric, goal, total, budget
        self.quotas = dict(quotas or {})  # trials each method gets (`budget.split: per_method`), else none
        self.rungs, self.factor = tuple(rungs), factor  # ASHA's on cost/grad_evals (`asha_final`), else none
        self._expect = asha_final(self.rungs, factor) if self.rungs and factor > 1 else None
        self.phase, self.confirm_runs, self.every_s = phase, confirm_runs, every_s
        self.slots, self.prior = max(1, slots), prior
        self.model: CostModel | None = prior  # this phase's at the last block: the next phase's prior
        self._write = write
        self._began: dict[str, float] = {}  # trial id -> when it took its slot (or was first seen)
        self._held: dict[str, float] = {}  # trial id -> seconds it held its slot, once finished
        self._start = time.monotonic()
        self._last = self._start
        self._state: tuple = ()
        self.best: dict[str, tuple[float, str]] = {}
        self.ended: dict[str, str] = {}
        self.latest: dict[str, float] = {}  # trial id -> last finite metric (reports between evaluations hold NaN)
        self.watch: Any = None  # the phase's StallWatch (tuner.run.stall): which running trials are silent

    def __getstate__(self) -> dict[str, Any]:
        return {"metric": self.metric, "goal": self.goal, "total": self.total, "budget": self.budget,
                "phase": self.phase, "confirm_runs": self.confirm_runs, "slots": self.slots, "prior": self.prior,
                "rungs": self.rungs, "factor": self.factor, "quotas": self.quotas, "every_s": self.every_s,
                "watch": self.watch}

    def __setstate__(self, state: dict[str, Any]) -> None:
        watch = state.pop("watch", None)
        self.__init__(**state)
        self.watch = watch

    def _line(self, text: str) -> None:
        line = f"[{time.monotonic() - self._start:6.0f}s] {text}"
        if self._write is not None:
            self._write(line)
        else:
            print(line, flush=True)

    def _better(self, a: float, b: float) -> bool:
        return goal_sign(self.goal) * (a - b) > 0

    # --- the numbers -----------------------------------------------------------------------------
    def views(self, trials: Sequence[Any]) -> list[TrialView]:
        out, now = [], time.monotonic()
        for t in trials:
            result = t.last_result or {}
            evals = result.get(EVALS)
            finished = t.trial_id in self.ended or t.status in ("TERMINATED", "ERROR")
            if not isinstance(evals, (int, float)) and t.status == "PENDING":
                continue  # not started: counted with the trials still to come
            began = self._began.setdefault(t.trial_id, now)
            held = self._held.get(t.trial_id, None if finished else now - began)
            out.append(TrialView(trial_values(t.config).get("method", "?"),
                                 float(evals) if isinstance(evals, (int, float)) else 0.0,
                                 result.get(self.metric), finished, held))
        return out

    def etas(self, trials: Sequence[Any]) -> tuple[float | None, float | None]:
        """(this phase, confirmation) ETAs in seconds, from the trials Ray holds now."""
        views = self.views(trials)
        self.model = fit_cost(views, self.prior)
        phase = eta_under(self.model, views, self.total, self.budget, slots=self.slots, expect=self._expect)
        confirm = None
        if self.confirm_runs:
            confirm = eta_under(self.model, [], self.confirm_runs, self.budget, slots=self.slots)
        return phase, confirm

    # --- the lines ---------------------------------------------------------------------------------
    def block(self, trials: Sequence[Any]) -> None:
        counts = {s: sum(1 for v in self.ended.values() if v == s) for s in OUTCOMES}
        running = [t for t in trials if t.status == "RUNNING"]
        phase_eta, confirm_eta = self.etas(trials)
        eta = f"ETA {self.phase} {fmt_duration(phase_eta)}"
        if self.confirm_runs:
            eta += f", then confirmation ({self.confirm_runs} runs) {fmt_duration(confirm_eta)}"
        self._line(f"{self.phase}: {len(self.ended)}/{self.total} done ({counts[COMPLETED]} completed, "
                   f"{counts[PRUNED]} pruned, {counts[DIVERGED]} diverged, {counts[ERRORED]} errored), "
                   f"{len(running)} running | {eta}")
        if self.quotas:
            self._line(f"    budget per method: {budget_line(trials, self.quotas)}")
        quiet = self.watch.quiet() if self.watch is not None else {}
        for t in running:
            result = t.last_result or {}
            evals = result.get(EVALS)
            done = f"{evals:.0f}" if isinstance(evals, (int, float)) else "0"
            method = trial_values(t.config).get("method", "?")
            silent = ""
            if t.trial_id in quiet:
                silent = (f"  silent for {fmt_duration(quiet[t.trial_id])} "
                          f"(stopped as stalled after {fmt_duration(self.watch.limit())})")
            self._line(f"    {t.trial_id}  {method:<10} {done:>6}/{self.budget:.0f} grad evals  "
                       f"{self.metric}={fmt_value(self.latest.get(t.trial_id))}{silent}")

    def _end(self, trial: Any, status: str) -> None:
        self.ended[trial.trial_id] = status
        if trial.trial_id in self._began:
            self._held[trial.trial_id] = time.monotonic() - self._began[trial.trial_id]
        result = trial.last_result or {}
        method = trial_values(trial.config).get("method", "?")
        value = result.get(self.metric)
        error = ""
        if status == ERRORED:
            config = json.dumps(public_values(trial_values(trial.config)), default=str)
            error = f": {with_hint(error_line(trial))}; config {config}"
        self._line(f"trial {trial.trial_id} ({method}) {status} at {fmt_value(result.get(EVALS))} grad evals, "
                   f"{self.metric}={fmt_value(value)}{error}")
        if status == COMPLETED and isinstance(value, float) and math.isfinite(value):
            if method not in self.best or self._better(value, self.best[method][0]):
                self.best[method] = (value, trial.trial_id)

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        now = time.monotonic()
        if now - self._last < self.every_s:
            return
        state = tuple(((t.last_result or {}).get(EVALS), t.status) for t in trials)
        if state == self._state and now - self._last < QUIET_EVERY_S:
            return  # nothing moved: one block a minute says the search is alive
        self._last, self._state = now, state
        self.block(trials)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.block(trials)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._began.setdefault(trial.trial_id, self._free_since())

    def _free_since(self) -> float:
        """When the slot a starting trial takes fell free (Ray's hand-over belongs to the trial's fixed
        cost): of the ends of the slots free now (the latest ends, one per slot not running a trial), the
        earliest; now if none, or if that was a minute ago or more."""
        now = time.monotonic()
        ends = sorted((self._began[t] + held for t, held in self._held.items()), reverse=True)
        running = sum(1 for t in self._began if t not in self._held)
        free = ends[:max(0, self.slots - running)]
        return min(free) if free and now - min(free) < 60 else now

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        value = result.get(self.metric)
        if isinstance(value, (int, float)) and math.isfinite(value):
            self.latest[trial.trial_id] = float(value)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._end(trial, outcome(trial.last_result))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._end(trial, ERRORED)

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._line(f"trial {trial.trial_id} failed ({error_line(trial)}); retrying from its last checkpoint")
