"""Run (or resume) one experiment: spec -> Optuna search under Ray Tune with a scheduler -> MLflow.

Everything an experiment keeps lives in `<storage>/<name>/`: Ray's experiment state and trial
checkpoints, `optuna.journal` (the study), `mlflow.db` (default tracking store), `spec.yaml` (the
resolved spec, which `resume` reloads) and `sharptune.json` (status, phase, driver pid). A name that
already has that folder is refused: continue it with `resume` or pick a new name, never mix.

Order matters for failing fast: the spec is loaded (exit 2) and the name is checked (exit 2) before
Ray starts; the tracking store is reached and written (exit 1) while Ray starts, and nothing is written
to the experiment folder and no trial runs until both are ready.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from ray import tune

from tuner.errors import RuntimeFailure, UserError
from tuner.layout import (
    CONFIRM_DIR,
    DEFAULT_STORAGE,
    JOURNAL_FILE,
    RAY_STATE_FILE,
    RESOLVED_FILE,
    SPEC_FILE,
    STATE_FILE,
    driver_alive,
    experiment_folders,
    experiment_path,
    prune_checkpoints,
    read_state,
    shown_status,
    write_state,
)
from tuner.names import COMPLETED, GRAD_EVALS, OUTCOMES, PRUNED
from tuner.results.feasible import constraint_values
from tuner.results.winners import winners, write_summary
from tuner.run import console, store_full
from tuner.run.comparison import record_comparison
from tuner.run.moved_modules import old_paths
from tuner.run.placement import DRIVER_CPU, check_placement
from tuner.run.progress import Progress
from tuner.run.ray_setup import RAY_STOP, logger_callbacks, ray_session, search_scheduler
from tuner.run.searcher import drop_torn_tail, finished_records, load_studies, objectives, prune_stopped
from tuner.run.split import budget_metrics, build_search, quotas
from tuner.run.stall import StallWatch
from tuner.run.store_full import write_failure
from tuner.run.trial_errors import error_line, exception_line
from tuner.spec import Spec, load_spec, trial_setup
from tuner.tracking.backfill import TrackingDown, settle
from tuner.tracking.outage import is_transient, quick_requests, wait_seconds
from tuner.tracking.reader import ExperimentStore
from tuner.tracking.store_check import check_tracking, has_parent_run
from tuner.tracking.tags import experiment_name
from tuner.tracking.writer import MlflowTracker, close_dangling
from tuner.trial.protocol import outcome, public_values, trial_values
from tuner.trial.trainable import train_trial
from tuner.value_rules import goal_sign, is_number
from tuner.workloads import runtime_env


# --- pieces given to Ray ---------------------------------------------------------------------------
def make_trainable(spec: Any, finished: dict[str, dict[str, Any]] | None = None) -> Any:
    """`train_trial` with the spec's setup and per-trial resources (needs Ray initialised); `finished`:
    the trials a resumed search replays instead of training (`tuner.run.searcher.finished_records`)."""
    resources = {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu}
    if spec.resources.workers > 1:  # the Tune trial only waits on its Ray Train run, whose workers hold these
        resources = {"cpu": DRIVER_CPU, "gpu": 0}
    trainable = tune.with_parameters(train_trial, setup=trial_setup(spec), finished=finished or {})
    return tune.with_resources(trainable, resources)


# --- the runner --------------------------------------------------------------------------------------
class Experiment:
    """One experiment's run or resume (see module docstring for the folder layout)."""

    def __init__(self, spec: Spec, *, address: str | None = None, out: Any = None) -> None:
        self.spec = spec
        self.dir = Path(spec.experiment_dir)
        self.address = address
        self.out = out or sys.stdout
        self.tracker: Any = None
        self._search_progress: Progress | None = None

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    # --- checks before anything starts ----------------------------------------------------------
    def refuse_existing(self) -> None:
        """Same name twice: ask for `resume` or a new name instead of mixing two runs."""
        if (self.dir / STATE_FILE).exists() or (self.dir / RAY_STATE_FILE).exists():
            status = shown_status(read_state(self.dir))
            raise UserError(f"experiment {self.spec.name!r} already exists in {self.dir} (status: {status}); "
                            f"continue it with `python -m tuner resume {self.spec.name} --storage "
                            f"{self.spec.storage_path}` or change `name:` in {self.spec.path}")

    def check_tracking(self, fresh: bool) -> None:
        exp_id = check_tracking(self.spec.tracking_uri, self.spec.name, self.dir)
        if fresh and has_parent_run(self.spec.tracking_uri, exp_id):
            raise UserError(f"MLflow experiment {experiment_name(self.spec.name)!r} at {self.spec.tracking_uri} "
                            f"already has runs; continue with `python -m tuner resume {self.spec.name}` or "
                            "change `name:` in the spec")

    def _tracker(self, phase: str) -> Any:
        return MlflowTracker(tracking_uri=self.spec.tracking_uri, name=self.spec.name,
                             spec=self.spec.to_dict(include_space=True), experiment_dir=str(self.dir),
                             error_line=error_line, time_attr=self.spec.scheduler.clock, phase=phase,
                             seed=self.spec.seed)

    def _run_config(self, name: str, storage: Path, callbacks: list[Any]) -> Any:
        return tune.RunConfig(
            name=name, storage_path=str(storage.resolve()), verbose=0, callbacks=[*logger_callbacks(), *callbacks],
            failure_config=tune.FailureConfig(max_failures=self.spec.max_failures),
            # every checkpoint is kept while the experiment runs: with `num_to_keep`, Ray deletes old ones
            # before its state file stops naming them, and a driver killed in between cannot resume that
            # trial ("checkpoint does not exist on storage anymore"); `prune_checkpoints` trims at the end
            checkpoint_config=tune.CheckpointConfig(num_to_keep=None))

    # --- phases ---------------------------------------------------------------------------------
    def _search_tuner(self, finished: dict[str, dict[str, Any]] | None = None) -> Any:
        spec = self.spec
        tracker = self._tracker("search")
        s = spec.scheduler
        asha = s.name == "asha" and s.clock == GRAD_EVALS  # its rungs are ETA's first guess
        progress = Progress(metric=spec.metric.name, goal=spec.metric.goal, total=spec.budget.num_samples,
                            budget=spec.budget.trial_grad_evals, confirm_runs=self.confirm_runs_at_most(),
                            slots=spec.budget.max_concurrent_trials, rungs=(s.read_at() or ()) if asha else (),
                            factor=s.reduction_factor if asha else 0.0,
                            quotas=quotas(spec) if spec.budget.split == "per_method" else None)
        self._search_progress = progress
        tune_config = tune.TuneConfig(
            search_alg=build_search(spec, self.dir), scheduler=search_scheduler(spec),
            num_samples=spec.budget.num_samples, time_budget_s=spec.budget.time_s, reuse_actors=True)
        watch = self._stall_watch(progress)
        return tune.Tuner(make_trainable(spec, finished), tune_config=tune_config,
                          run_config=self._run_config(spec.name, Path(spec.storage_path), [watch, tracker, progress]))

    def _stall_watch(self, progress: Progress) -> StallWatch:
        """The phase's stall watch (`budget.stall_timeout`), shared with its progress lines."""
        progress.watch = StallWatch(str(self.dir), self.spec.budget.stall_timeout_s)
        return progress.watch

    def _confirm_tuner(self, points: list[dict[str, Any]]) -> Any:
        searched = self._search_progress  # its cost model starts the confirmation's ETA
        progress = Progress(metric=self.spec.metric.name, goal=self.spec.metric.goal, total=len(points),
                            budget=self.spec.budget.trial_grad_evals, phase="confirm",
                            slots=self.spec.budget.max_concurrent_trials,
                            prior=searched.model if searched is not None else None)
        tune_config = tune.TuneConfig(num_samples=1, max_concurrent_trials=self.spec.budget.max_concurrent_trials,
                                      reuse_actors=True)
        watch = self._stall_watch(progress)
        callbacks = [watch, self._tracker("confirm"), progress]
        return tune.Tuner(make_trainable(self.spec), param_space={"_point": tune.grid_search(points)},
                          tune_config=tune_config, run_config=self._run_config(CONFIRM_DIR, self.dir, callbacks))

    def confirm_points(self, results: Any) -> list[dict[str, Any]]:
        """Top-k configs per method x every seed x every noise level (seeds paired).

        Completed configs first, best value first. A method with fewer than `top_k` completed configs is
        filled with its pruned ones, the furthest-going first: with `budget.split: shared` one ASHA compares
        methods at equal grad evals, early, where a method that costs two gradients a step is half as far
        along, so a search can stop every trial of one method (split per method, each method's own ASHA lets
        its first trial through); the confirmation runs each config its whole budget, so every method is
        compared at the end of training, not left out of the comparison.
        """
        confirm, spec = self.spec.confirm, self.spec
        sign = goal_sign(spec.metric.goal)
        by_method: dict[str, list[tuple[tuple[int, float, float], dict[str, Any], str]]] = {}
        for r in results:
            metrics = r.metrics or {}
            value, status = metrics.get(spec.metric.name), outcome(metrics, r.error is not None)
            if status not in (COMPLETED, PRUNED) or not is_number(value):
                continue
            if any(v > 0 for v in constraint_values(spec.constraints, metrics)):  # outside `constraints:`
                continue
            params = public_values(trial_values(r.config))
            reached = float(metrics.get(GRAD_EVALS) or 0.0)
            key = (int(status == COMPLETED), reached, sign * value)
            by_method.setdefault(params["method"], []).append((key, params, metrics.get("trial_id", "")))
        points = []
        conditions = confirm.conditions()
        for method in spec.methods:
            ranked = sorted(by_method.get(method, []), key=lambda x: x[0], reverse=True)[:confirm.top_k]
            for rank, (_, params, source) in enumerate(ranked, 1):
                for seed in confirm.seeds:
                    for condition in conditions:  # stress levels: workload options, as a search would set them
                        points.append({**params, **condition, "_seed": int(seed), "_phase": "confirm", "_rank": rank,
                                       "_source": source})
        return points

    def confirm_runs_at_most(self) -> int:
        """Runs of the confirmation phase if every method has `top_k` finished configs (0 without one)."""
        confirm = self.spec.confirm
        if confirm is None:
            return 0
        return len(self.spec.methods) * confirm.top_k * len(confirm.seeds) * len(confirm.conditions())

    def run(self, resume: bool = False) -> int:
        """Run the search (and the confirmation phase), print the summary; exit code."""
        if not resume:
            self.refuse_existing()
        RAY_STOP.stopped = False  # a stop belongs to this run's fits only
        quiet_libraries()
        self.say(console.header(self.spec, self.dir, self.confirm_runs_at_most()))
        # The store check (MLflow import, SQLite schema: seconds of driver CPU) overlaps Ray's start-up
        # (mostly waiting on its processes). A failed check shuts Ray down before anything is written.
        with ThreadPoolExecutor(1, thread_name_prefix="sharptune-store-check") as pool:
            checked = pool.submit(self.check_tracking, not resume)
            with ray_session(self.address, runtime_env=runtime_env(self.spec.workload.name)):
                checked.result()
                check_placement(self.spec.resources.cpu, self.spec.resources.gpu, workers=self.spec.resources.workers)
                try:
                    return self._run_checked(resume)
                except Exception as exc:
                    if not write_failure(exc):  # a full disk, from any writer (tuner.run.store_full)
                        raise
                    with contextlib.suppress(Exception):  # the disk may still be full: `list` shows a dead
                        write_state(self.dir, status="interrupted")  # driver's run as interrupted anyway
                    raise RuntimeFailure(store_full.message(self.dir, self.spec.name, self.spec.storage_path)) \
                        from None

    def _run_checked(self, resume: bool) -> int:
        """`run` once the store answers and Ray is up."""
        spec = self.spec
        self.dir.mkdir(parents=True, exist_ok=True)
        if not resume:
            (self.dir / SPEC_FILE).write_text(yaml.safe_dump(spec.to_dict(include_space=False), sort_keys=False),
                                              encoding="utf-8")
            (self.dir / RESOLVED_FILE).write_text(yaml.safe_dump(spec.to_dict(include_space=True), sort_keys=False),
                                                  encoding="utf-8")
            write_state(self.dir, name=spec.name, status="running", phase="search", spec_file=str(self.dir / SPEC_FILE),
                        source_spec=spec.path, started=time.time(), pid=os.getpid(), host=socket.gethostname())
        else:
            write_state(self.dir, status="running", pid=os.getpid(), host=socket.gethostname(), resumed=time.time())
            drop_torn_tail(self.dir / JOURNAL_FILE)  # a write a full disk cut short, before anything appends
        self.tracker = self._tracker("search")
        interrupted = False
        try:
            self.tracker.parent_run_id()  # created (or reopened) before any trial
            phase = read_state(self.dir).get("phase", "search")
            search = self._fit_search(resume and phase == "search")
            interrupted = self._interrupted(search)
            if not interrupted:
                self._end_search(search)
                self._settle(search, "search")
            confirm = None
            if not interrupted and spec.confirm is not None:
                write_state(self.dir, phase="confirm")
                confirm = self._fit_confirm(search, resume=resume and phase == "confirm")
                interrupted = confirm is not None and self._interrupted(confirm)
                if confirm is not None and not interrupted:
                    self._settle(confirm, "confirm")
        except KeyboardInterrupt:
            interrupted = True
        except TrackingDown:
            write_state(self.dir, status="interrupted")  # `resume` writes what MLflow lacks, then goes on
            raise
        finally:
            self._close_dangling()
        budget = budget_metrics(read_state(self.dir).get("budget") or {})
        if interrupted:
            write_state(self.dir, status="interrupted")
            self.tracker.end_parent("KILLED", budget)
            self.say(f"interrupted: state saved in {self.dir}\n"
                     f"resume with: python -m tuner resume {spec.name} --storage {spec.storage_path}")
            return 130
        self.tracker.end_parent("FINISHED", budget)
        self.summarize(search, confirm, *self._record_winners())
        counts = _counts(search)
        write_state(self.dir, status="completed", phase="done", trials=counts)
        prune_checkpoints(self.dir)
        return 0

    def _close_dangling(self) -> None:
        """Runs a killed driver left RUNNING are closed; skipped while the server is down (`resume` does it)."""
        try:
            with quick_requests(self.spec.tracking_uri):
                close_dangling(self.spec.tracking_uri, self.spec.name, keep=self.tracker.parent_run_id())
        except Exception as exc:
            if not is_transient(exc):
                raise

    def _settle(self, results: Any, phase: str) -> None:
        """MLflow completed from Ray's records (`tuner.tracking.backfill`); TrackingDown if it stays down."""
        tracker = self._tracker(phase)
        settle(tracker, results, wait_seconds(), self.say, exception_line)

    def _finished_records(self) -> dict[str, dict[str, Any]]:
        """The journal's finished trials (what a restored trial replays), errors with MLflow's message."""
        if not (self.dir / JOURNAL_FILE).exists():
            return {}
        records = {tid: record for study in load_studies(self.dir, self.spec.name).values()
                   for tid, record in finished_records(study).items()}
        errored = [tid for tid, record in records.items() if "error" in record]
        if errored:
            with contextlib.suppress(Exception):  # a missing message must not stop the resume
                for tid, line in self.tracker.recorded_errors(errored).items():
                    records[tid]["error"] = line
        return records

    def _fit_search(self, resume: bool) -> Any:
        if resume and (self.dir / RAY_STATE_FILE).exists():
            trainable = make_trainable(self.spec, self._finished_records())
            with old_paths():  # a folder saved before tuner/tracking existed names its old module paths
                tuner = tune.Tuner.restore(str(self.dir), trainable=trainable, resume_errored=True)
        elif resume:  # the driver died before Ray saved anything: a new Ray adopts the journal's trials
            tuner = self._search_tuner(self._finished_records())
        elif (self.dir / RAY_STATE_FILE).exists():
            with old_paths():
                tuner = tune.Tuner.restore(str(self.dir), trainable=make_trainable(self.spec), resume_unfinished=False)
            return tuner.get_results()
        else:
            tuner = self._search_tuner()
        return tuner.fit()

    def _fit_confirm(self, search: Any, resume: bool) -> Any:
        folder = self.dir / CONFIRM_DIR
        if resume and (folder / RAY_STATE_FILE).exists():
            with old_paths():
                tuner = tune.Tuner.restore(str(folder), trainable=make_trainable(self.spec), resume_errored=True)
            return tuner.fit()
        points = self.confirm_points(search)
        if not points:
            self.say("confirm: no completed search trial to confirm")
            return None
        self.say(f"confirm: {len(points)} runs (top {self.spec.confirm.top_k} per method x "
                 f"{len(self.spec.confirm.seeds)} seeds x {len(self.spec.confirm.conditions())} stress conditions)")
        return self._confirm_tuner(points).fit()

    @staticmethod
    def _interrupted(results: Any) -> bool:
        """Ray ends `fit()` normally on Ctrl-C: its stop signal or an unfinished trial tell it apart. (The
        time budget ends every trial, unfinished ones as stopped: that is an end, see `_end_search`.)"""
        unfinished = len(results) - results.num_terminated - results.num_errors
        return RAY_STOP.stopped or unfinished > 0

    def _end_search(self, results: Any) -> None:
        """Trials Ray stopped without telling the searcher (the time budget) are pruned in Optuna too, and
        a search the budget cut short says so."""
        spec = self.spec
        metric, _ = objectives(spec)
        stopped = sum(prune_stopped(study, results, spec.scheduler.clock, metric)
                      for study in load_studies(self.dir, spec.name).values())
        if spec.budget.time_s is not None and (stopped or len(results) < spec.budget.num_samples):
            self.say(f"time budget reached (budget.time = {spec.budget.time_s:g} s): {len(results)} of "
                     f"{spec.budget.num_samples} trials ran; {stopped} running then were stopped, recorded as pruned")

    # --- the end --------------------------------------------------------------------------------
    def summarize(self, search: Any, confirm: Any, table: pd.DataFrame | None,
                  trials: pd.DataFrame | None = None, history: Any = None) -> None:
        """Print each method's winner (the one tagged in MLflow), its trial tally and where the store is."""
        for line in console.summary(self.spec, self.dir, search, confirm, table, trials, history):
            self.say(line)

    def _record_winners(self) -> tuple[pd.DataFrame | None, pd.DataFrame | None, Any]:
        """Robust winners (seed intervals when confirmed) onto the parent run and the best runs' tags.

        Returns the table that was tagged (what `summarize` prints), the trials it was computed from and
        the store's `metric_history`; (None, None, None) when the store cannot be read.
        """
        spec = self.spec
        try:
            store = ExperimentStore.open(spec.name, tracking_uri=spec.tracking_uri, storage=spec.storage_path)
            table, robust, trials = winners(store, spec.metric.name, spec.metric.goal)
        except Exception as exc:  # the search is done and stored; a summary failure must not hide that
            self.say(f"warning: could not read the winners from MLflow ({exc}); "
                     f"`python -m tuner report {spec.name}` retries")
            return None, None, None
        try:
            write_summary(store, table, robust, trials)
            record_comparison(store, table, robust, trials)
        except Exception as exc:  # as above: the table is still right, only the tags are missing
            self.say(f"warning: could not record the winners in MLflow ({exc}); "
                     f"`python -m tuner report {spec.name}` retries")
        return table, trials, store.metric_history


def _counts(results: Any) -> dict[str, int]:
    out = dict.fromkeys(OUTCOMES, 0)
    for r in results:
        out[outcome(r.metrics, r.error is not None)] += 1
    out["total"] = len(results)
    return out


def quiet_libraries() -> None:
    """The driver's output is ours: not MLflow's "Creating initial MLflow database tables..." and
    "Updating database tables", nor Optuna's "A new study created in Journal". Warnings still show."""
    import optuna

    # WARNING hides "Creating initial MLflow database tables..."; CRITICAL also its logged traceback of a
    # database error, which reaches us as the exception itself (a full disk: tuner.run.store_full)
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
    optuna.logging.set_verbosity(optuna.logging.WARNING)


# --- entry points for the commands ------------------------------------------------------------------
def find_experiment(name_or_path: str, storage: str | None) -> Path:
    """An experiment folder from a name (under `storage`), a folder, or the spec file that made it."""
    candidate = Path(name_or_path).expanduser()
    if candidate.is_dir() and (candidate / STATE_FILE).exists():
        return candidate.resolve()
    if candidate.is_file():
        return Path(load_spec(candidate).experiment_dir)
    root = Path(storage or DEFAULT_STORAGE).expanduser().resolve()
    folder = experiment_path(root, name_or_path)
    if not (folder / STATE_FILE).exists():
        known = [p.name for p in experiment_folders(root)]
        raise UserError(f"no experiment {name_or_path!r} in {root} (known: {', '.join(known) or 'none'}); "
                        "pass --storage DIR, the experiment folder, or its spec file")
    return folder


def resume_experiment(name_or_path: str, *, storage: str | None = None, address: str | None = None) -> int:
    """`python -m tuner resume NAME`: continue the search (then confirmation) where it stopped."""
    folder = find_experiment(name_or_path, storage)
    state = read_state(folder)
    if state.get("status") == "completed":
        print(f"experiment {folder.name!r} in {folder.parent} is completed: nothing left to do "
              f"(see it with `python -m tuner report {folder.name} --storage {folder.parent}`)")
        return 0
    if driver_alive(state) and state.get("pid") != os.getpid():
        raise UserError(f"experiment {folder.name!r} is still running (driver pid {state['pid']})")
    spec = load_spec(folder / SPEC_FILE)
    return Experiment(spec, address=address).run(resume=True)
