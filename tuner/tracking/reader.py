"""Read side of MLflow for one sharptune experiment (the layout in docs/DESIGN.md section 4).

Reports and exports only read what the runner wrote (the names are `tuner.tracking.tags`'); this module turns
child runs into a tidy table (one row per trial, typed hyperparameters split from workload overrides
by `tuner.hparams.split_values`, final metric values).
"""

from __future__ import annotations

import ast
import json
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import yaml
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient

from tuner.errors import UserError
from tuner.hparams import split_values
from tuner.layout import DB_NAME, DEFAULT_STORAGE, default_tracking_uri, experiment_path
from tuner.tracking.tags import (
    ERROR_TAG,
    METHOD_TAG,
    MLFLOW_PREFIX,
    PHASE_TAG,
    ROLE_TAG,
    SEED_TAG,
    STATUS_TAG,
    TRIAL_ID_TAG,
    experiment_name,
    tag_column,
)


def known_experiments(storage: str | Path) -> list[str]:
    """Experiment names that have a default store under `storage` (folders holding mlflow.db)."""
    root = Path(storage).expanduser()
    if not root.is_dir():
        return []
    return sorted(p.parent.name for p in root.glob(f"*/{DB_NAME}"))


def parse_param(text: Any) -> Any:
    """MLflow keeps params as strings; recover numbers, booleans, None and tuples/lists."""
    if not isinstance(text, str):
        return text
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if text.strip() in ("None", "null"):  # how MLflow writes Python's None; lowercase "none" is a spec's
        return None                       # word (preconditioner: none) and stays a string
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text
    if isinstance(value, tuple):
        return list(value)
    return value if isinstance(value, (int, float, bool, list, dict)) else text


@contextmanager
def _tracking(uri: str) -> Iterator[None]:
    """`mlflow.search_runs` reads the global tracking URI: point it at our store, then put it back."""
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before)


@dataclass
class ExperimentStore:
    """One experiment's MLflow data: the raw runs, the tidy trials and metric histories."""

    name: str
    tracking_uri: str
    experiment_id: str
    results_dir: Path
    client: MlflowClient = field(repr=False)
    _runs: pd.DataFrame | None = field(default=None, repr=False)

    @classmethod
    def open(cls, name: str, *, tracking_uri: str | None = None,
             storage: str | Path | None = None) -> ExperimentStore:
        """Find `sharptune/<name>`; a UserError lists the experiments that do exist."""
        storage = Path(storage if storage is not None else DEFAULT_STORAGE).expanduser().resolve()
        if tracking_uri is None:
            db = experiment_path(storage, name) / DB_NAME
            if not db.is_file():
                known = known_experiments(storage)
                raise UserError(f"no experiment {name!r} in {storage} (known: {', '.join(known) or 'none'}); "
                                "pass --storage DIR or --tracking-uri URI")
            tracking_uri = default_tracking_uri(storage, name)
        client = MlflowClient(tracking_uri)
        try:
            exp = client.get_experiment_by_name(experiment_name(name))
            others = [] if exp is not None else [
                e.name.removeprefix(MLFLOW_PREFIX) for e in client.search_experiments(view_type=ViewType.ALL)
                if e.name.startswith(MLFLOW_PREFIX)]
        except mlflow.exceptions.MlflowException as exc:
            raise UserError(f"cannot read the MLflow store at {tracking_uri}: {str(exc).splitlines()[0]}") from None
        if exp is None:
            raise UserError(f"no experiment {experiment_name(name)!r} at {tracking_uri} "
                            f"(known: {', '.join(sorted(others)) or 'none'})")
        return cls(name, tracking_uri, exp.experiment_id, storage / name, client)

    # --- runs ---------------------------------------------------------------------------------------
    def runs(self, refresh: bool = False) -> pd.DataFrame:
        """Every active run of the experiment as `mlflow.search_runs` returns it (cached)."""
        if self._runs is None or refresh:
            with _tracking(self.tracking_uri):
                df = mlflow.search_runs(experiment_ids=[self.experiment_id], max_results=100_000)
            self._runs = df
        return self._runs

    def parent(self) -> pd.Series | None:
        """The experiment's parent run (tag sharptune.role=parent), the latest if resumed several times."""
        df = self.runs()
        if tag_column(ROLE_TAG) not in df:
            return None
        parents = df[df[tag_column(ROLE_TAG)] == "parent"]
        if not len(parents):
            return None
        return parents.sort_values("start_time").iloc[-1]

    def trials(self) -> pd.DataFrame:
        """Tidy child runs: one row per trial (see `trials_frame`)."""
        return trials_frame(self.runs())

    def run_status(self, run_id: str) -> str:
        """A run's MLflow status now: RUNNING, FINISHED, FAILED or KILLED (not cached)."""
        return str(self.client.get_run(run_id).info.status)

    def metric_history(self, run_id: str, key: str) -> pd.DataFrame:
        """A metric's full history (`step` is cost/grad_evals by contract), sorted by step."""
        hist = self.client.get_metric_history(run_id, key)
        df = pd.DataFrame({"step": [m.step for m in hist], "value": [m.value for m in hist],
                           "timestamp": [m.timestamp for m in hist]})
        return df.sort_values(["step", "timestamp"], kind="stable").reset_index(drop=True)

    def spec(self) -> dict[str, Any]:
        """The resolved spec from the parent run's `spec.yaml` artifact ({} when absent)."""
        parent = self.parent()
        if parent is None:
            return {}
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one small file: no bar
        with tempfile.TemporaryDirectory() as tmp:
            try:
                path = self.client.download_artifacts(parent["run_id"], "spec.yaml", tmp)
                data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
            except (mlflow.exceptions.MlflowException, OSError, yaml.YAMLError):
                return {}
        return data if isinstance(data, dict) else {}

    def objective(self, metric: str | None = None, goal: str | None = None) -> tuple[str, str]:
        """The spec's `metric: {name, goal}` (parent params first, then spec.yaml), unless given."""
        if metric and goal:
            return metric, goal
        parent = self.parent()
        params = {} if parent is None else {k[len("params."):]: v for k, v in parent.items()
                                            if k.startswith("params.") and isinstance(v, str)}
        name = metric or params.get("metric.name") or params.get("metric/name")
        direction = goal or params.get("metric.goal") or params.get("metric/goal")
        if not (name and direction):
            spec_metric = self.spec().get("metric") or {}
            name = name or spec_metric.get("name")
            direction = direction or spec_metric.get("goal")
        if not name:
            raise UserError(f"experiment {self.name!r} does not record its metric; pass --metric NAME")
        if direction not in ("maximize", "minimize"):
            direction = "minimize" if "loss" in name or "perplexity" in name else "maximize"
        return str(name), str(direction)


def spec_target(store: ExperimentStore) -> tuple[float | None, str | None]:
    """(`metric.target` or None, the spec's first method: the baseline) from the stored spec."""
    spec = store.spec()
    target = (spec.get("metric") or {}).get("target")
    methods = spec.get("methods") or []
    return (float(target) if isinstance(target, (int, float)) else None), (str(methods[0]) if methods else None)


def _config_key(hparams: dict[str, Any]) -> str:
    return json.dumps(hparams, sort_keys=True, default=str)


def _text(run: pd.Series, key: str) -> str | None:
    """A tag or param of a search_runs row; None where the column is missing or NaN."""
    value = run.get(key)
    return value if isinstance(value, str) and value != "" else None


def trials_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """Child runs as one row each: `run_id, method, phase, status, seed, trial_id, start_time,
    end_time, hparams` (typed sampled hyperparameters), `conditions` (other params such as
    label_noise), `config_key` (identity of a config across seeds), `error` (an errored run's error
    line, else None) and one column per metric name."""
    columns = ["run_id", "method", "phase", "status", "seed", "trial_id", "start_time", "end_time",
               "hparams", "conditions", "config_key", "error"]
    if not len(runs) or tag_column(ROLE_TAG) not in runs:
        return pd.DataFrame(columns=columns)
    child = runs[runs[tag_column(ROLE_TAG)] == "trial"]
    param_cols = [c for c in runs.columns if c.startswith("params.")]
    metric_cols = [c for c in runs.columns if c.startswith("metrics.")]
    rows = []
    for _, run in child.iterrows():
        params = {c[len("params."):]: parse_param(run[c]) for c in param_cols
                  if isinstance(run[c], str)}
        method = _text(run, tag_column(METHOD_TAG)) or params.get("method")
        _, hparams, conditions = split_values({**params, "method": method})
        seed = parse_param(_text(run, tag_column(SEED_TAG)))
        row = {
            "run_id": run["run_id"], "method": method,
            "phase": _text(run, tag_column(PHASE_TAG)) or "search",
            "status": _text(run, tag_column(STATUS_TAG)) or "completed",
            "seed": float(seed) if isinstance(seed, (int, float)) else math.nan,
            "trial_id": _text(run, tag_column(TRIAL_ID_TAG)),
            "start_time": run.get("start_time"), "end_time": run.get("end_time"),
            "hparams": hparams, "conditions": conditions, "config_key": _config_key(hparams),
            "error": _text(run, tag_column(ERROR_TAG)),
        }
        for c in metric_cols:
            row[c[len("metrics."):]] = run[c]
        rows.append(row)
    df = pd.DataFrame(rows, columns=columns + [c[len("metrics."):] for c in metric_cols])
    return df.sort_values("start_time", kind="stable").reset_index(drop=True)
