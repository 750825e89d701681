"""The winning config as a file that training code reads with `methods.load_config`.

Layout: `method`, `hyperparameters` (exactly what `build_optimizer` takes) and `provenance` (where the
numbers came from: experiment, MLflow run ids, robust metric and interval, seeds, package versions, and
`training.lr_schedule`: the trial's lr schedule with its horizon in steps, which the optimizer does not
take but a training loop applies, `tuner.trial.lr_scheduler`), so a config found months ago can still be
traced back to its runs and trained as they were.
"""

from __future__ import annotations

import json
import math
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from methods import ConfigError
from tuner.errors import UserError
from tuner.hparams import HORIZON, horizon_steps, optimizer_hparams
from tuner.results.robust import robust_winners
from tuner.tracking.reader import ExperimentStore
from tuner.trial.lr_schedule import LrSchedule
from tuner.value_rules import is_number

FORMATS = ("yaml", "json")


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _sharptune_version() -> str:
    """Installed metadata, else the pyproject of this checkout (running from a source tree)."""
    version = _version("sharptune")
    if version != "not installed":
        return version
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    if pyproject.is_file():
        if sys.version_info >= (3, 11):
            import tomllib

            return str(tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"]) + " (source)"
    return version


def _plain(value: Any) -> Any:
    """YAML/JSON friendly: tuples become lists, NaN becomes None."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _optimizer_hparams(method: str, values: dict[str, Any], trial_grad_evals: int | None) -> dict[str, Any]:
    """What `build_optimizer` takes, resolved along the trial's own path (defaults and horizon filled).

    `values` are a config's hyperparameters as the results table split them (`tuner.hparams.split_values`)."""
    try:
        resolved = optimizer_hparams(method, values, trial_grad_evals)
    except ConfigError as exc:
        raise UserError(f"cannot export {method}: {exc}") from None
    return {k: _plain(v) for k, v in sorted(resolved.items())}


def _training(spec: dict[str, Any], method: str, values: dict[str, Any], budget: int | None) -> dict[str, Any]:
    """What the trial's loop did besides the optimizer: its lr schedule (the spec's; constant for results
    written before the key existed) over the trial's length in steps (None when the budget is unknown)."""
    schedule = LrSchedule.from_dict(spec.get("lr_schedule"))
    horizon = None if budget is None else horizon_steps(method, values, budget)
    return {"lr_schedule": {**schedule.to_dict(), "horizon": horizon}}


def winning_config(store: ExperimentStore, method: str | None = None, *, metric: str | None = None,
                   goal: str | None = None) -> dict[str, Any]:
    """The robust winner (overall, or of `method`) as `{method, hyperparameters, provenance}`."""
    metric, goal = store.objective(metric, goal)
    trials = store.trials()
    if not len(trials):
        raise UserError(f"experiment {store.name!r} has no trial runs yet")
    robust = robust_winners(trials, metric, goal)
    table = robust.methods[robust.methods["config_key"].notna()]
    if method is not None:
        if method not in set(robust.methods["method"]):
            raise UserError(f"method {method!r} was not run in {store.name!r} "
                            f"(run: {', '.join(sorted(robust.methods['method']))})")
        table = table[table["method"] == method]
        if not len(table):
            raise UserError(f"method {method!r} has no finished runs with {metric} in {store.name!r}")
    if not len(table):
        raise UserError(f"experiment {store.name!r} has no finished runs with {metric}")
    table = table[table["mean"].map(is_number)]
    if not len(table):
        raise UserError(f"{f'method {method!r} in ' if method else ''}experiment {store.name!r} has no finite "
                        f"result: every run of {metric} diverged or has no value, so there is no winner to export")
    row = table.iloc[0]
    runs = trials[(trials["method"] == row["method"]) & (trials["config_key"] == row["config_key"])]
    parent = store.parent()
    stress = sorted({k for c in runs["conditions"] for k in c})
    provenance: dict[str, Any] = {
        "experiment": store.name,
        "tracking_uri": store.tracking_uri,
        "mlflow_experiment_id": store.experiment_id,
        "parent_run_id": None if parent is None else parent["run_id"],
        "run_ids": list(row["run_ids"]),  # the runs behind the statistic (confirmation runs when there are any)
        "search_run_ids": list(runs.loc[runs["phase"] == "search", "run_id"]),
        "metric": {"name": metric, "goal": goal, "mean": _plain(float(row["mean"])),
                   "ci95": [_plain(float(row["low"])), _plain(float(row["high"]))], "n": int(row["n"]),
                   "source": robust.source, "rank": int(row["rank"])},
        "seeds": [int(s) for s in row["seeds"]],
        "conditions": {k: sorted({_plain(c[k]) for c in runs["conditions"] if k in c}, key=repr) for k in stress},
        "divergence_rate": _plain(float(row["divergence_rate"])),
        "versions": {"sharptune": _sharptune_version(), "torch": _version("torch"), "mlflow": _version("mlflow"),
                     "optuna": _version("optuna"), "python": sys.version.split()[0]},
        "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    spec = store.spec()
    budget = (spec.get("budget") or {}).get("trial_grad_evals")
    hyperparameters = _optimizer_hparams(str(row["method"]), dict(row["hparams"]), budget)
    provenance["training"] = _training(spec, str(row["method"]), dict(row["hparams"]), budget)
    if HORIZON in hyperparameters and HORIZON not in row["hparams"]:
        provenance["horizon"] = (f"{HORIZON} is the tuned trial's length in steps ({budget} gradient evaluations); "
                                 "set it to your run's length")
    return {"method": str(row["method"]), "hyperparameters": hyperparameters, "provenance": provenance}


def dump_config(config: dict[str, Any], fmt: str = "yaml") -> str:
    """Text of the config in `fmt` (yaml or json)."""
    if fmt == "json":
        return json.dumps(config, indent=2) + "\n"
    if fmt == "yaml":
        return yaml.safe_dump(config, sort_keys=False, default_flow_style=False)
    raise UserError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")


def format_for(path: str | Path | None, fmt: str | None) -> str:
    """Explicit --format wins; else `.json` files get JSON and everything else YAML."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise UserError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        return fmt
    return "json" if path is not None and Path(path).suffix.lower() == ".json" else "yaml"
