"""The experiment spec: one YAML file, parsed into typed frozen dataclasses with every default filled.

Why so strict: a search runs for hours on a cluster, so a typo must fail in a second, on one line that
names the file, the line, the field and what is allowed (`FILE:LINE: field.path: problem (allowed: …)`),
before Ray, MLflow or any trial starts. This module imports neither Ray nor MLflow.

Format (see docs/DESIGN.md §3): W&B-sweep shape on top (`name`, `description`, `metric`, `parameters`),
Optuna's words per parameter (`type: float|int|categorical`, `low`, `high` inclusive, `log`, `step`,
`values`, or a fixed `value`), conditionals `when: {param: [values]}` (`method` selects methods).
Each method brings its default space (`MethodInfo.search_space`); `parameters` overrides it, and a
parameter only ever reaches the methods that accept it (see `Spec.space`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from tuner.names import PRECISIONS
from tuner.space import Param
from tuner.spec._claim import parse_claim
from tuner.spec._collect import parse_all
from tuner.spec._lr_schedule import parse_lr_schedule
from tuner.spec._reader import _apply_override, _Block, _choice, _int, _list_of, _number, _read_yaml, _string
from tuner.spec._resolve import _resolve_space
from tuner.spec._sections import (
    _method_name,
    _metric,
    _objective,
    _parse_budget,
    _parse_confirm,
    _parse_parameters,
    _parse_scheduler,
    _parse_workload,
    _tracking_uri,
)
from tuner.spec._study import parse_constraints, parse_enqueue, parse_warm_start
from tuner.spec._trial_setup import trial_setup
from tuner.spec.model import (
    MAX_CPU,
    MAX_GPU,
    MAX_WORKERS,
    NAME_PATTERN,
    SAMPLERS,
    SCHEDULERS,
    TOP_KEYS,
    Budget,
    Claim,
    Confirm,
    Constraint,
    Objective,
    Resources,
    Sampler,
    Scheduler,
    Spec,
    SpecError,
    Workload,
)
from tuner.workloads import compile_problem

__all__ = ["Budget", "Claim", "Confirm", "Constraint", "Objective", "Param", "Resources", "Sampler", "Scheduler",
           "Spec", "SpecError", "Workload", "load_spec", "trial_setup"]


def load_spec(path: str | os.PathLike[str], overrides: Sequence[str] = ()) -> Spec:
    """Read, check and resolve a spec file; raise SpecError, one line per independent problem (`parse_all`).

    `overrides` are `--set KEY=VALUE` items (`budget.trial_grad_evals=60`): each VALUE is read as YAML
    and replaces KEY in the file's data before the check, so an override is validated exactly as the
    file is, and an error names the key and the `--set` it came from.
    """
    file = str(path)
    data = _read_yaml(file)
    applied = [_apply_override(file, data, item) for item in overrides]

    def explain(exc: SpecError) -> SpecError:
        for key, item in applied:
            if exc.field == key or exc.field.startswith((key + ".", key + "[")) or key.startswith(exc.field + "."):
                return SpecError(exc.file, None, exc.field, f"{exc.problem} (from --set {item})")
        return exc

    return parse_all(data, lambda d: _parse(file, d), explain)


def _parse(file: str, data: Any) -> Spec:
    spec_dir = Path(file).resolve().parent
    top = _Block(file, data, "", 1, TOP_KEYS)
    name = top.take("name", _string(NAME_PATTERN, "letters, digits, _ . - (like my-exp_1.2)"))
    if name.startswith(".") or len(name) > 100:
        top.fail("name", f"bad experiment name {name!r}", "1-100 of A-Z a-z 0-9 _ . -, not starting with '.'")
    description = top.take("description", _string(), "")
    metric = top.take("metric", _metric)
    seed = top.take("seed", _int(0, 2**32 - 1), 0)

    workload_block = top.block("workload", ("name", "options", "compile"))
    workload = _parse_workload(workload_block)
    methods = top.take("methods", _list_of(_method_name))
    budget_block = top.block("budget", ("num_samples", "max_concurrent_trials", "time", "trial_grad_evals",
                                        "eval_every", "curve_points", "diag_points", "stall_timeout", "split"))
    sampler_block = top.block("sampler", ("name", "seed"))
    sampler = Sampler(sampler_block.take("name", _choice(SAMPLERS), "tpe"),
                      sampler_block.take("seed", _int(0, 2**32 - 1), seed))

    parameters = _parse_parameters(top, methods, workload)
    trial_grad_evals = budget_block.take("trial_grad_evals", _int(1, 10**12))
    space, defaults = _resolve_space(top, methods, parameters, workload, trial_grad_evals)

    budget = _parse_budget(budget_block, sampler, methods, space, defaults)
    scheduler = _parse_scheduler(top.block("scheduler", ("name", *SCHEDULERS["asha"])), budget)

    resources_block = top.block("resources", ("cpu", "gpu", "workers"))
    resources = Resources(resources_block.take("cpu", _number(0, MAX_CPU, low_open=True), 1),
                          resources_block.take("gpu", _number(0, MAX_GPU), 0),
                          resources_block.take("workers", _int(1, MAX_WORKERS), 1))

    storage_block = top.block("storage", ("path",))
    storage = storage_block.take("path", _string(), "results")
    storage_path = Path(os.path.expanduser(storage))
    storage_path = (storage_path if storage_path.is_absolute() else spec_dir / storage_path).resolve()
    if storage_path.exists() and not storage_path.is_dir():
        storage_block.fail("path", f"{storage_path} exists and is not a directory", "a directory path")

    tracking_block = top.block("tracking", ("uri",))
    tracking_uri = tracking_block.take("uri", _tracking_uri(spec_dir), None)
    if tracking_uri is None:
        tracking_uri = f"sqlite:///{storage_path / name / 'mlflow.db'}"

    objectives = top.take("objectives", _list_of(_objective), ())
    if objectives:
        names = [o.name for o in objectives]
        if len(objectives) < 2:
            top.fail("objectives", "needs at least two objectives (one objective is `metric`)")
        if len(set(names)) != len(names):
            top.fail("objectives", f"repeated objective names {names}")
        if metric.name not in names:
            top.fail("objectives", f"must include the metric {metric.name!r} (the scheduler ranks by it)")
        if not SAMPLERS[sampler.name]:
            sampler_block.fail("name", f"{sampler.name!r} cannot optimise several objectives",
                               ", ".join(k for k, multi in SAMPLERS.items() if multi))

    confirm = _parse_confirm(top, workload) if top.has("confirm") else None
    precision = top.take("precision", _choice(PRECISIONS), "fp32")
    if workload.compile and resources.gpu == 0 and (problem := compile_problem(torch.device("cpu"))):
        workload_block.fail("compile", problem, "compile: false")
    if precision == "fp16" and resources.gpu == 0:
        top.fail("precision", "fp16 needs a GPU (loss scaling is a CUDA matter) and resources.gpu is 0",
                 "fp32 or bf16 on a CPU; fp16 with resources.gpu > 0")
    enqueue = parse_enqueue(top, methods, space, sampler.name, trial_grad_evals)
    warm_start = parse_warm_start(top, storage_path, name, sampler.name)
    constraints = parse_constraints(top, sampler.name)
    return Spec(
        path=str(Path(file).resolve()), name=name, description=description, metric=metric,
        workload=workload, methods=methods, parameters=parameters, space=space, defaults=defaults,
        sampler=sampler, scheduler=scheduler, budget=budget, resources=resources, seed=seed,
        tracking_uri=tracking_uri, storage_path=str(storage_path), objectives=objectives,
        confirm=confirm, max_failures=top.take("max_failures", _int(0, 100), 1), precision=precision,
        enqueue=enqueue, warm_start=warm_start, constraints=constraints, lr_schedule=parse_lr_schedule(top),
        claim=parse_claim(top, metric, methods, parameters, confirm),
    )


