"""Each method's space: its default space, overridden by `parameters`, filtered to what it takes, ordered
for define-by-run, and probed (extreme values tried on the method now, not mid-run).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from methods import BASE_ONLY, HPARAMS, ConfigError, get_method
from tuner.errors import UserError
from tuner.hparams import hyperparameter_names, is_hyperparameter, optimizer_hparams
from tuner.space import Param
from tuner.spec._reader import _Block
from tuner.spec.model import Workload
from tuner.value_rules import same_value as _same
from tuner.workloads import resolve_options


def _check_when(b: _Block, p: Param, params: Mapping[str, Param], methods: tuple[str, ...],
                workload: Workload) -> None:
    """`when:` must name `method` or another parameter, with values that parameter can take."""

    w = _Block(b.file, b.data[p.name]["when"], f"{p.path}.when", p.line, p.when) if p.when else None
    for cond, values in p.when.items():
        if cond == "method":
            for v in values:
                if v not in methods:
                    w.fail(cond, f"{v!r} is not among the spec's methods", ", ".join(methods))
            continue
        if cond == p.name:
            w.fail(cond, "a parameter cannot depend on itself")
        infos = [get_method(m) for m in methods]
        known = (cond in params or cond in workload.options
                 or any(is_hyperparameter(info.name, cond) for info in infos))
        if not known:
            w.fail(cond, f"unknown parameter {cond!r}",
                   "method, " + ", ".join(sorted(set(params) | set(workload.options))))
        possible: list[Callable[[Any], bool]] = []
        if cond in params:
            possible.append(params[cond].contains)
        for info in infos:
            if cond in info.search_space:
                possible.append(_param_from_default(info.name, cond, info.search_space[cond]).contains)
            elif is_hyperparameter(info.name, cond):
                default = _method_defaults(info, workload).get(cond)
                possible.append(lambda v, d=default: _same(v, d))
        if cond in workload.options:
            possible.append(lambda v, d=workload.options[cond]: _same(v, d))
        for v in values:
            if not any(check(v) for check in possible):
                w.fail(cond, f"{cond} can never be {v!r}", f"values {cond} can take in this spec")


# --- per-method spaces ----------------------------------------------------------------------------
def _param_from_default(method: str, name: str, spec: Mapping[str, Any]) -> Param:
    """A method's default space entry (same vocabulary) as a Param."""
    return Param.from_dict(name, spec, origin="method default")


def _base_only() -> Mapping[str, frozenset[str]]:
    """Names that only one base optimizer takes (momentum for sgd, betas for adamw)."""

    return BASE_ONLY


def _method_defaults(info: Any, workload: Workload) -> dict[str, Any]:
    """What each name is when the trial does not sample it: the preset's defaults, then the table's."""

    out = {name: HPARAMS[name].default for name in hyperparameter_names(info.name) if name in HPARAMS}
    out.update(info.defaults)
    out["base"] = info.defaults.get("base", info.default_base)
    for k, v in workload.options.items():
        out.setdefault(k, v)
    return out


def _resolve_space(top: _Block, methods: tuple[str, ...], params: Mapping[str, Param], workload: Workload,
                   trial_grad_evals: int) -> tuple[dict[str, dict[str, Param]], dict[str, dict[str, Any]]]:
    """Each method's space: its defaults, overridden by `parameters`, minus what it does not take."""

    space: dict[str, dict[str, Param]] = {}
    defaults: dict[str, dict[str, Any]] = {}
    for m in methods:
        info = get_method(m)
        own: dict[str, Param] = {k: _param_from_default(m, k, v) for k, v in info.search_space.items()}
        for name, p in params.items():
            if "method" in p.when and m not in p.when["method"]:
                continue
            if is_hyperparameter(m, name) or name in workload.options:
                own[name] = p
        own = _apply_base(own, info)
        defaults[m] = _method_defaults(info, workload)
        space[m] = _sampling_order(top, own)
        _probe(top, info, space[m], workload, trial_grad_evals)
    for name, p in params.items():
        if not any(name in s for s in space.values()):
            accepted = sorted({h for m in methods for h in hyperparameter_names(m)} | set(workload.options))
            scope = p.when.get("method", methods)
            top.fail_at(p.path, p.line, f"no selected method takes {name!r} (methods: {', '.join(scope)}) "
                        f"and workload {workload.name} has no such option", ", ".join(accepted))
    return space, defaults


def _apply_base(own: dict[str, Param], info: Any) -> dict[str, Param]:
    """Drop names of the base a method does not use; make them conditional when `base` is searched."""
    base = own.get("base")
    bases = tuple(base.candidates() or ()) if base else (info.defaults.get("base", info.default_base),)
    out: dict[str, Param] = {}
    for name, p in own.items():
        owners = {b for b, names in _base_only().items() if name in names}
        if not owners:
            out[name] = p
            continue
        usable = tuple(b for b in bases if b in owners)
        if not usable:
            continue
        if len(usable) < len(bases):
            limit = tuple(b for b in p.when.get("base", usable) if b in usable)
            p = replace(p, when={**p.when, "base": limit})
        out[name] = p
    return out


def _sampling_order(top: _Block, own: Mapping[str, Param]) -> dict[str, Param]:
    """Order parameters so that each comes after the ones its `when:` reads (define-by-run needs it)."""
    ordered: dict[str, Param] = {}
    pending = dict(own)
    while pending:
        ready = [n for n, p in pending.items() if all(c not in pending for c in p.when if c != "method")]
        if not ready:
            name, p = next(iter(pending.items()))
            top.fail_at(p.path, p.line, "`when:` conditions form a cycle: " + ", ".join(pending))
        for n in ready:
            ordered[n] = pending.pop(n)
    return ordered


def _probe(top: _Block, info: Any, own: Mapping[str, Param], workload: Workload, trial_grad_evals: int) -> None:
    """Try each parameter's extreme values and choices on the method (and workload) now, not mid-run.

    Resolved along the trial's own path (`tuner.hparams.optimizer_hparams`, horizon included); the
    preflight then builds and steps the real optimizer on the real workload.
    """

    base = own.get("base")
    bases = tuple(base.candidates() or ()) if base else (info.defaults.get("base", info.default_base),)
    def where(p: Param) -> tuple[str, int | None]:
        return (p.path, p.line) if p.origin == "spec" else ("methods", top.line_of("methods"))

    def attempt(trial: dict[str, Any], p: Param, v: Any) -> None:
        try:
            optimizer_hparams(info.name, trial, trial_grad_evals)
        except ConfigError as exc:
            top.fail_at(*where(p), f"{v!r} does not work for method {info.name}: {exc}")

    for b in bases:
        fixed_params = {k: p for k, p in own.items()
                        if p.type == "fixed" and is_hyperparameter(info.name, k) and _allowed_for_base(p, b)
                        and not set(p.when) - {"method", "base"}}
        fixed = {k: p.value for k, p in fixed_params.items()}
        attempt({**fixed, "base": b}, base or Param("base", "fixed", origin="method default"), b)
        for name, p in own.items():
            if not _allowed_for_base(p, b) or name == "base":
                continue
            for v in p.probes():
                if is_hyperparameter(info.name, name):
                    attempt({**fixed, "base": b, name: v}, p, v)
                else:
                    try:
                        resolve_options(workload.name, {**workload.options, name: v})
                    except UserError as exc:
                        top.fail_at(*where(p), f"{v!r} does not work for workload {workload.name}: {exc}")


def _allowed_for_base(p: Param, base: str) -> bool:
    if "base" in p.when and base not in p.when["base"]:
        return False
    if p.name == "base":
        return True
    owners = {b for b, names in _base_only().items() if p.name in names}
    return not owners or base in owners


