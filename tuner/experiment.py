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

import json
import logging
import math
import os
import socket
import sys
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from tuner.errors import RuntimeFailure, UserError
from tuner.progress import Progress, fmt_duration, fmt_value
from tuner.tracking import exception_line
from tuner.trainable import (
    COMPLETED,
    DIVERGED,
    ERRORED,
    FAULT_ENV,
    OUTCOMES,
    PRUNED,
    outcome,
    public_params,
    train_trial,
    trial_point,
)

STATE_FILE = "sharptune.json"
SPEC_FILE = "spec.yaml"
RESOLVED_FILE = "resolved_spec.yaml"  # with each method's space: what `validate` prints
CONFIRM_DIR = "confirm"
QUIET_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "HF_HUB_OFFLINE": "1",
    "RAY_AIR_NEW_OUTPUT": "0",
    "TUNE_MAX_PENDING_TRIALS_PG": "1",
}


# --- experiment folder state ---------------------------------------------------------------------
def read_state(experiment_dir: str | Path) -> dict[str, Any]:
    """`sharptune.json` of an experiment ({} when absent or unreadable)."""
    try:
        return json.loads((Path(experiment_dir) / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def write_state(experiment_dir: str | Path, **changes: Any) -> dict[str, Any]:
    """Update `sharptune.json` atomically (a killed driver never leaves half a file)."""
    path = Path(experiment_dir) / STATE_FILE
    state = {**read_state(experiment_dir), **changes, "updated": time.time()}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=1, default=str), encoding="utf-8")
    os.replace(tmp, path)
    return state


def driver_alive(state: Mapping[str, Any]) -> bool:
    """Is the driver that wrote `state` still running (same host, live pid)?"""
    if state.get("host") != socket.gethostname() or not state.get("pid"):
        return False
    try:
        os.kill(int(state["pid"]), 0)
    except (OSError, ValueError):
        return False
    return True


def shown_status(state: Mapping[str, Any]) -> str:
    """Status for people: a `running` experiment whose driver is gone was interrupted."""
    status = str(state.get("status", "unknown"))
    if status == "running" and not driver_alive(state):
        return "interrupted"
    return status


# --- pieces given to Ray ---------------------------------------------------------------------------
def trial_setup(spec: Any) -> dict[str, Any]:
    """Plain data every trial gets (through `tune.with_parameters`).

    `eval_plan` (`tuner.training.EvalPlan.to_dict()`): where the scheduler reads the primary metric, so
    the trial evaluates the full validation split there (ASHA: its rungs grace_period * rf^k up to
    max_t, and max_t; FIFO: only the end; HyperBand and the median rule: every report), plus the
    subset curve points in between (the trial spaces them).
    """
    s, budget = spec.scheduler, spec.budget
    required = [spec.metric.name, *(o.name for o in spec.objectives)]
    if s.name != "fifo":
        required.append(s.time_attr)
    full_at: list[float] | None = None  # hyperband, median: they read every report
    if s.name == "asha":  # Ray's rungs (one bracket): min_t * rf^k <= max_t; a spare point costs only time
        rungs = [s.grace_period * s.reduction_factor ** k for k in range(64)]
        full_at = sorted({*(r for r in rungs if r <= s.max_t * (1 + 1e-9)), float(s.max_t)})
    elif s.name == "fifo":
        full_at = []
    fault = os.environ.get(FAULT_ENV)
    return {
        "workload": spec.workload.name, "workload_options": dict(spec.workload.options), "seed": spec.seed,
        "trial_grad_evals": budget.trial_grad_evals, "eval_every": budget.eval_every,
        "cpu": spec.resources.cpu, "gpu": spec.resources.gpu,
        "required_metrics": sorted(set(required) - {"training_iteration", "time_total_s"}),
        "eval_plan": {"clock": s.time_attr if s.name != "fifo" else "cost/grad_evals", "full_at": full_at},
        "fault": json.loads(fault) if fault else None,
    }


def make_trainable(spec: Any) -> Any:
    """`train_trial` with the spec's setup and per-trial resources (needs Ray initialised)."""
    from ray import tune

    resources = {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu}
    return tune.with_resources(tune.with_parameters(train_trial, setup=trial_setup(spec)), resources)


def make_scheduler(spec: Any) -> Any:
    """ASHA / HyperBand / median stopping / FIFO on the spec's clock (`cost/grad_evals` by default)."""
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, HyperBandScheduler, MedianStoppingRule

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


def _no_ray_resume_advice(record: logging.LogRecord) -> bool:
    """On Ctrl-C Ray advises `Tuner.restore(...)`; our own resume line is the one to follow."""
    text = record.getMessage()
    return not ("Tuner.restore(" in text or text.startswith("Stop signal received"))


# --- Ray session -------------------------------------------------------------------------------------
@contextmanager
def ray_session(address: str | None, num_cpus: int | None = None) -> Iterator[None]:
    """Attach to `address` (or RAY_ADDRESS), else start a private local Ray; always shut our Ray down."""
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    import ray

    tune_logger = logging.getLogger("ray.tune.tune")
    if _no_ray_resume_advice not in tune_logger.filters:
        tune_logger.addFilter(_no_ray_resume_advice)
    if ray.is_initialized():  # a caller (tests, notebooks) owns the session
        yield
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    try:
        if address:
            ray.init(address=address, include_dashboard=False, logging_level="WARNING", log_to_driver=True)
        else:
            # Ray 2.60 turns token authentication on for a new local cluster (good) and warns that it did
            # on every start; keep stderr for errors (RAY_AUTH_MODE must be set before ray is imported).
            logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
            ray.init(num_cpus=num_cpus, include_dashboard=False, logging_level="WARNING",
                     _node_ip_address="127.0.0.1")
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise RuntimeFailure(f"cannot start or reach Ray{f' at {address}' if address else ''}: {exc}") from None
    try:
        yield
    finally:
        ray.shutdown()


# --- the runner --------------------------------------------------------------------------------------
class Experiment:
    """One experiment's run or resume (see module docstring for the folder layout)."""

    def __init__(self, spec: Any, *, address: str | None = None, out: Any = None) -> None:
        self.spec = spec
        self.dir = Path(spec.experiment_dir)
        self.address = address
        self.out = out or sys.stdout
        self.tracker: Any = None

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    # --- checks before anything starts ----------------------------------------------------------
    def refuse_existing(self) -> None:
        """Same name twice: ask for `resume` or a new name instead of mixing two runs."""
        if (self.dir / STATE_FILE).exists() or (self.dir / "tuner.pkl").exists():
            status = shown_status(read_state(self.dir))
            raise UserError(f"experiment {self.spec.name!r} already exists in {self.dir} (status: {status}); "
                            f"continue it with `python -m tuner resume {self.spec.name} --storage "
                            f"{self.spec.storage_path}` or change `name:` in {self.spec.path}")

    def check_tracking(self, fresh: bool) -> None:
        from tuner.tracking import check_tracking, experiment_name

        exp_id = check_tracking(self.spec.tracking_uri, self.spec.name, self.dir)
        if fresh:
            from mlflow import MlflowClient

            parents = MlflowClient(self.spec.tracking_uri).search_runs(
                [exp_id], "tags.`sharptune.role` = 'parent'", max_results=1)
            if parents:
                raise UserError(f"MLflow experiment {experiment_name(self.spec.name)!r} at {self.spec.tracking_uri} "
                                f"already has runs; continue with `python -m tuner resume {self.spec.name}` or "
                                "change `name:` in the spec")

    def _tracker(self, phase: str) -> Any:
        from tuner.tracking import MlflowTracker

        time_attr = self.spec.scheduler.time_attr if self.spec.scheduler.name != "fifo" else "cost/grad_evals"
        return MlflowTracker(tracking_uri=self.spec.tracking_uri, name=self.spec.name,
                             spec=self.spec.to_dict(include_space=True), experiment_dir=str(self.dir),
                             time_attr=time_attr, phase=phase, seed=self.spec.seed)

    def _run_config(self, name: str, storage: Path, callbacks: list[Any]) -> Any:
        from ray import tune

        return tune.RunConfig(
            name=name, storage_path=str(storage.resolve()), verbose=0, callbacks=callbacks,
            failure_config=tune.FailureConfig(max_failures=self.spec.max_failures),
            # every checkpoint is kept while the experiment runs: with `num_to_keep`, Ray deletes old ones
            # before its state file stops naming them, and a driver killed in between cannot resume that
            # trial ("checkpoint does not exist on storage anymore"); `prune_checkpoints` trims at the end
            checkpoint_config=tune.CheckpointConfig(num_to_keep=None))

    # --- phases ---------------------------------------------------------------------------------
    def _search_tuner(self) -> Any:
        from ray import tune

        from tuner.searcher import build_search

        spec = self.spec
        tracker = self._tracker("search")
        progress = Progress(metric=spec.metric.name, goal=spec.metric.goal, total=spec.budget.num_samples,
                            budget=spec.budget.trial_grad_evals, confirm_runs=self.confirm_runs_at_most())
        tune_config = tune.TuneConfig(
            search_alg=build_search(spec, self.dir), scheduler=make_scheduler(spec),
            num_samples=spec.budget.num_samples, time_budget_s=spec.budget.time_s, reuse_actors=True)
        return tune.Tuner(make_trainable(spec), tune_config=tune_config,
                          run_config=self._run_config(spec.name, Path(spec.storage_path), [tracker, progress]))

    def _confirm_tuner(self, points: list[dict[str, Any]]) -> Any:
        from ray import tune

        progress = Progress(metric=self.spec.metric.name, goal=self.spec.metric.goal, total=len(points),
                            budget=self.spec.budget.trial_grad_evals, phase="confirm")
        tune_config = tune.TuneConfig(num_samples=1, max_concurrent_trials=self.spec.budget.max_concurrent_trials,
                                      reuse_actors=True)
        return tune.Tuner(make_trainable(self.spec), param_space={"_point": tune.grid_search(points)},
                          tune_config=tune_config,
                          run_config=self._run_config(CONFIRM_DIR, self.dir, [self._tracker("confirm"), progress]))

    def confirm_points(self, results: Any) -> list[dict[str, Any]]:
        """Top-k completed configs per method x every seed x every noise level (seeds paired)."""
        confirm, spec = self.spec.confirm, self.spec
        sign = 1.0 if spec.metric.goal == "maximize" else -1.0
        by_method: dict[str, list[tuple[float, dict[str, Any], str]]] = {}
        for r in results:
            metrics = r.metrics or {}
            value = metrics.get(spec.metric.name)
            if outcome(metrics, r.error is not None) != COMPLETED or not _finite(value):
                continue
            params = public_params(trial_point(r.config))
            by_method.setdefault(params["method"], []).append((sign * value, params, metrics.get("trial_id", "")))
        points = []
        noises = confirm.label_noise or (None,)
        for method in spec.methods:
            ranked = sorted(by_method.get(method, []), key=lambda x: -x[0])[:confirm.top_k]
            for rank, (_, params, source) in enumerate(ranked, 1):
                for seed in confirm.seeds:
                    for noise in noises:
                        point = {**params, "_seed": int(seed), "_phase": "confirm", "_rank": rank, "_source": source}
                        if noise is not None:
                            point["label_noise"] = float(noise)
                        points.append(point)
        return points

    def confirm_runs_at_most(self) -> int:
        """Runs of the confirmation phase if every method has `top_k` completed configs (0 without one)."""
        confirm = self.spec.confirm
        if confirm is None:
            return 0
        return len(self.spec.methods) * confirm.top_k * len(confirm.seeds) * max(1, len(confirm.label_noise))

    def header(self) -> str:
        """A few lines a person reads before the first trial; the full resolved spec goes to a file."""
        spec, b = self.spec, self.spec.budget
        limit = f", time limit {fmt_duration(b.time_s)}" if b.time_s else ""
        scheduler = spec.scheduler.name + (f" on {spec.scheduler.time_attr}" if spec.scheduler.name != "fifo" else "")
        lines = [f"sharptune: {spec.name}" + (f": {spec.description}" if spec.description else ""),
                 f"  methods   {', '.join(spec.methods)}",
                 f"  workload  {spec.workload.name}; metric {spec.metric.name} ({spec.metric.goal})",
                 f"  search    {b.num_samples} trials x {b.trial_grad_evals} grad evals, {b.max_concurrent_trials} "
                 f"at a time; {spec.sampler.name} sampler, {scheduler} scheduler{limit}"]
        if spec.confirm is not None:
            c = spec.confirm
            lines.append(f"  confirm   top {c.top_k} per method x seeds {list(c.seeds)}"
                         + (f" x label noise {list(c.label_noise)}" if c.label_noise else "")
                         + f" (at most {self.confirm_runs_at_most()} runs)")
        lines.append(f"  results   {self.dir} (resolved spec: {self.dir / RESOLVED_FILE})")
        lines.append(f"  MLflow    {spec.tracking_uri}")
        return "\n".join(lines)

    def run(self, resume: bool = False) -> int:
        """Run the search (and the confirmation phase), print the summary; exit code."""
        if not resume:
            self.refuse_existing()
        self.say(self.header())
        # The store check (MLflow import, SQLite schema: seconds of driver CPU) overlaps Ray's start-up
        # (mostly waiting on its processes). A failed check shuts Ray down before anything is written.
        with ThreadPoolExecutor(1, thread_name_prefix="sharptune-store-check") as pool:
            checked = pool.submit(self.check_tracking, not resume)
            with ray_session(self.address):
                checked.result()
                return self._run_checked(resume)

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
        from tuner.tracking import close_dangling

        self.tracker = self._tracker("search")
        interrupted = False
        try:
            self.tracker.parent_run_id()  # created (or reopened) before any trial
            phase = read_state(self.dir).get("phase", "search")
            search = self._fit_search(resume and phase == "search")
            interrupted = self._interrupted(search, spec.budget.num_samples)
            confirm = None
            if not interrupted and spec.confirm is not None:
                write_state(self.dir, phase="confirm")
                confirm = self._fit_confirm(search, resume=resume and phase == "confirm")
                interrupted = confirm is not None and self._interrupted(confirm, None)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            close_dangling(spec.tracking_uri, spec.name, keep=self.tracker.parent_run_id())
        if interrupted:
            write_state(self.dir, status="interrupted")
            self.tracker.end_parent("KILLED")
            self.say(f"interrupted: state saved in {self.dir}\n"
                     f"resume with: python -m tuner resume {spec.name} --storage {spec.storage_path}")
            return 130
        self.summarize(search, confirm)
        self.tracker.end_parent("FINISHED", {})
        self._record_winners()
        counts = _counts(search)
        write_state(self.dir, status="completed", phase="done", trials=counts)
        prune_checkpoints(self.dir)
        return 0

    def _fit_search(self, resume: bool) -> Any:
        from ray import tune

        if resume and (self.dir / "tuner.pkl").exists():
            tuner = tune.Tuner.restore(str(self.dir), trainable=make_trainable(self.spec), resume_errored=True)
        elif resume:  # the driver died before Ray saved anything: start the search afresh
            tuner = self._search_tuner()
        elif (self.dir / "tuner.pkl").exists():
            tuner = tune.Tuner.restore(str(self.dir), trainable=make_trainable(self.spec), resume_unfinished=False)
            return tuner.get_results()
        else:
            tuner = self._search_tuner()
        return tuner.fit()

    def _fit_confirm(self, search: Any, resume: bool) -> Any:
        from ray import tune

        folder = self.dir / CONFIRM_DIR
        if resume and (folder / "tuner.pkl").exists():
            tuner = tune.Tuner.restore(str(folder), trainable=make_trainable(self.spec), resume_errored=True)
            return tuner.fit()
        points = self.confirm_points(search)
        if not points:
            self.say("confirm: no completed search trial to confirm")
            return None
        self.say(f"confirm: {len(points)} runs (top {self.spec.confirm.top_k} per method x "
                 f"{len(self.spec.confirm.seeds)} seeds x {max(1, len(self.spec.confirm.label_noise))} noise levels)")
        return self._confirm_tuner(points).fit()

    @staticmethod
    def _interrupted(results: Any, num_samples: int | None) -> bool:
        """Ray ends `fit()` normally on Ctrl-C: an unfinished trial (or too few trials) means interrupted."""
        unfinished = len(results) - results.num_terminated - results.num_errors
        return unfinished > 0 or (num_samples is not None and len(results) < num_samples)

    # --- the end --------------------------------------------------------------------------------
    def summarize(self, search: Any, confirm: Any) -> None:
        """Print the best config per method, its cost and where the MLflow store is."""
        spec = self.spec
        sign = 1.0 if spec.metric.goal == "maximize" else -1.0
        best: dict[str, Any] = {}
        counts: dict[str, dict[str, int]] = {}
        for r in search:
            metrics = r.metrics or {}
            method = trial_point(r.config).get("method", "?")
            status = outcome(metrics, r.error is not None)
            counts.setdefault(method, dict.fromkeys(OUTCOMES, 0))[status] += 1
            value = metrics.get(spec.metric.name)
            if status != COMPLETED or not _finite(value):
                continue
            if method not in best or sign * value > sign * best[method].metrics[spec.metric.name]:
                best[method] = r
        self.say(f"\nsummary of {spec.name} ({spec.metric.name}, {spec.metric.goal}):")
        self.say(f"{'method':<14}{'best':>12}{'grad_evals':>12}{'wall_s':>9}  {'trials c/p/d/e':<16}config")
        for method in spec.methods:
            c = counts.get(method, dict.fromkeys(OUTCOMES, 0))
            tally = f"{c[COMPLETED]}/{c[PRUNED]}/{c[DIVERGED]}/{c[ERRORED]}"
            if method in best:
                m = best[method].metrics
                config = {k: v for k, v in public_params(trial_point(best[method].config)).items() if k != "method"}
                self.say(f"{method:<14}{fmt_value(m[spec.metric.name]):>12}{fmt_value(m.get('cost/grad_evals')):>12}"
                         f"{fmt_value(m.get('cost/wall_s')):>9}  {tally:<16}{json.dumps(config, default=str)}")
            else:
                self.say(f"{method:<14}{'-':>12}{'-':>12}{'-':>9}  {tally:<16}(no completed trial)")
        errors: dict[str, list[str]] = {}
        for r in [*search, *(confirm or [])]:
            if r.error is not None:
                errors.setdefault(trial_point(r.config).get("method", "?"), []).append(exception_line(r.error))
        for method, lines in errors.items():
            self.say(f"errored: {method}: {len(lines)} trial(s); first error: {lines[0]}")
        if confirm is not None:
            self.say(f"confirmation: {len(confirm)} runs ({confirm.num_errors} errored); "
                     "`python -m tuner report` ranks them by the seed interval")
        self.say(f"MLflow: {spec.tracking_uri} (experiment sharptune/{spec.name}); results in {self.dir}")
        if spec.tracking_uri.startswith("sqlite:"):
            self.say(f"browse: python -m tuner ui {spec.name} --storage {spec.storage_path}")

    def _record_winners(self) -> None:
        """Robust winners (seed intervals when confirmed) onto the parent run and the best runs' tags."""
        from dashboards.summary import tag_winners

        try:
            tag_winners(self.spec.name, tracking_uri=self.spec.tracking_uri, storage=self.spec.storage_path,
                        metric=self.spec.metric.name, goal=self.spec.metric.goal)
        except Exception as exc:  # the search is done and stored; a summary failure must not hide that
            self.say(f"warning: could not record the winners in MLflow ({exc}); "
                     f"`python -m tuner report {self.spec.name}` retries")


def prune_checkpoints(experiment_dir: Path) -> int:
    """After a completed experiment nothing resumes: keep only each trial's newest checkpoint."""
    import shutil

    removed = 0
    for trial_dir in experiment_dir.glob("**/train_trial_*"):
        checkpoints = sorted(p for p in trial_dir.glob("checkpoint_*") if p.is_dir())
        for old in checkpoints[:-1]:
            shutil.rmtree(old, ignore_errors=True)
            removed += 1
    return removed


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _counts(results: Any) -> dict[str, int]:
    out = dict.fromkeys(OUTCOMES, 0)
    for r in results:
        out[outcome(r.metrics, r.error is not None)] += 1
    out["total"] = len(results)
    return out


# --- entry points for the commands ------------------------------------------------------------------
def run_spec(path: str, *, address: str | None = None) -> int:
    """`python -m tuner run SPEC`."""
    from tuner.spec import load_spec

    return Experiment(load_spec(path), address=address).run(resume=False)


def find_experiment(name_or_path: str, storage: str | None) -> Path:
    """An experiment folder from a name (under `storage`), a folder, or the spec file that made it."""
    candidate = Path(name_or_path).expanduser()
    if candidate.is_dir() and (candidate / STATE_FILE).exists():
        return candidate.resolve()
    if candidate.is_file():
        from tuner.spec import load_spec

        return Path(load_spec(candidate).experiment_dir)
    root = Path(storage or "results").expanduser().resolve()
    folder = root / name_or_path
    if not (folder / STATE_FILE).exists():
        known = sorted(p.parent.name for p in root.glob(f"*/{STATE_FILE}")) if root.is_dir() else []
        raise UserError(f"no experiment {name_or_path!r} in {root} (known: {', '.join(known) or 'none'}); "
                        "pass --storage DIR, the experiment folder, or its spec file")
    return folder


def resume_experiment(name_or_path: str, *, storage: str | None = None, address: str | None = None) -> int:
    """`python -m tuner resume NAME`: continue the search (then confirmation) where it stopped."""
    from tuner.spec import load_spec

    folder = find_experiment(name_or_path, storage)
    state = read_state(folder)
    if state.get("status") == "completed":
        raise UserError(f"experiment {folder.name!r} in {folder.parent} is already completed")
    if driver_alive(state) and state.get("pid") != os.getpid():
        raise UserError(f"experiment {folder.name!r} is still running (driver pid {state['pid']})")
    spec = load_spec(folder / SPEC_FILE)
    return Experiment(spec, address=address).run(resume=True)
