"""Workloads by import target: `path/to/tasks.py:MyTask` or `my_package.tasks:MyTask`.

The convention of Hydra's `_target_` and LightningCLI's `class_path`: a user's own `Workload`
subclass, named in the spec, checked like a built-in one. A file path is relative to the spec's
folder (`absolute_target` makes it absolute, so a saved spec still finds it). The driver, the
preflight and every Ray worker resolve a name through `load_target`, the one path.

A Ray worker on another machine has no such file: `runtime_env` ships it (Ray's `py_modules`), and
the environment variable `SHIPPED_ENV` tells the worker under which module name it arrived there.
A package target is shipped too unless it is installed (in site-packages), where the workers are
expected to have it like any other dependency.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import json
import os
import sys
import sysconfig
from functools import lru_cache
from pathlib import Path
from typing import Any

from tuner.workloads._base import Workload
from tuner.workloads._options import WorkloadError

SHIPPED_ENV = "SHARPTUNE_SHIPPED_WORKLOADS"  # JSON {target as in the spec: module name on the worker}
FIELD = "workload.name"


def is_target(name: str) -> bool:
    """Whether a workload name is an import target (`module:Class`) rather than a registered name."""
    return ":" in name


def _split(name: str) -> tuple[str, str]:
    module, _, cls = name.rpartition(":")
    if not module or not cls.isidentifier():
        raise WorkloadError(f"{FIELD}: bad import target {name!r} (allowed: path/to/file.py:Class or "
                            "package.module:Class)")
    return module, cls


def absolute_target(name: str, base: Path) -> str:
    """The target with a file path made absolute against `base` (the spec's folder)."""
    module, cls = _split(name)
    if not module.endswith(".py"):
        return name
    path = Path(os.path.expanduser(module))
    return f"{(path if path.is_absolute() else base / path).resolve()}:{cls}"


def _shipped() -> dict[str, str]:
    try:
        return dict(json.loads(os.environ.get(SHIPPED_ENV) or "{}"))
    except ValueError:
        return {}


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0]


def _import_file(path: Path, target: str) -> Any:
    """The module of a workload file, executed once per process (under a name unique to its path)."""
    if not path.stem.isidentifier():
        raise WorkloadError(f"{FIELD}: {path}: the file name must be a Python identifier (like my_tasks.py)")
    name = f"{path.stem}_{hashlib.sha256(str(path).encode()).hexdigest()[:10]}"  # two folders, two tasks.py
    if name in sys.modules:
        return sys.modules[name]
    if not path.is_file():
        raise WorkloadError(f"{FIELD}: {path}: no such file (from {target!r}; a path is relative to the spec's folder)")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[name] = module  # dataclasses and pickling look classes up there
    try:
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    except SyntaxError as exc:
        del sys.modules[name]
        raise WorkloadError(f"{FIELD}: {path}:{exc.lineno}: syntax error: {exc.msg}") from None
    except Exception as exc:
        del sys.modules[name]
        raise WorkloadError(f"{FIELD}: {path}: importing it failed: {type(exc).__name__}: {_first_line(exc)}") from None
    return module


def _import_module(module: str, base: Path | None) -> Any:
    if base is not None and str(base) not in sys.path:
        sys.path.append(str(base))  # a package beside the spec is found without installing it
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name):
            raise WorkloadError(f"{FIELD}: no module {exc.name!r} (from {module!r}; looked in the spec's folder "
                                "and sys.path)") from None
        raise WorkloadError(f"{FIELD}: module {module!r}: importing it failed: {_first_line(exc)}") from None
    except SyntaxError as exc:
        raise WorkloadError(f"{FIELD}: {exc.filename}:{exc.lineno}: syntax error: {exc.msg}") from None
    except Exception as exc:
        raise WorkloadError(f"{FIELD}: module {module!r}: importing it failed: "
                            f"{type(exc).__name__}: {_first_line(exc)}") from None


@lru_cache(maxsize=64)
def load_target(name: str, base: str | None = None) -> type:
    """The `Workload` subclass that `name` points to; WorkloadError names the field and the file."""
    module_name, cls_name = _split(name)
    shipped = _shipped().get(name)
    if shipped is not None:  # a Ray worker: the runtime env brought the code under this module name
        module = _import_module(shipped, None)
        where = getattr(module, "__file__", shipped)
    elif module_name.endswith(".py"):
        path = Path(module_name)
        module = _import_file(path, name)
        where = str(path)
    else:
        module = _import_module(module_name, Path(base) if base else None)
        where = getattr(module, "__file__", module_name)
    cls = getattr(module, cls_name, None)
    if cls is None:
        found = sorted(n for n, v in vars(module).items() if inspect.isclass(v) and issubclass(v, Workload)
                       and v.__module__ == module.__name__)
        raise WorkloadError(f"{FIELD}: {where} has no class {cls_name!r} (Workload subclasses there: "
                            f"{', '.join(found) or 'none'})")
    if not (inspect.isclass(cls) and issubclass(cls, Workload)):
        raise WorkloadError(f"{FIELD}: {cls_name} in {where} is not a subclass of tuner.workloads.Workload")
    missing = sorted(getattr(cls, "__abstractmethods__", ()))
    if missing:
        raise WorkloadError(f"{FIELD}: {cls_name} in {where} does not implement {', '.join(missing)}")
    metric = getattr(cls, "primary_metric", None)
    if not (isinstance(metric, tuple) and len(metric) == 2 and metric[1] in ("max", "min")):
        raise WorkloadError(f"{FIELD}: {cls_name} in {where} needs primary_metric = (\"eval/...\", \"max\"|\"min\")")
    return cls


def _installed(path: Path) -> bool:
    roots = {sysconfig.get_paths()[k] for k in ("purelib", "platlib", "stdlib")}
    return any(path.is_relative_to(Path(root).resolve()) for root in roots if root)


def runtime_env(name: str) -> dict[str, Any] | None:
    """Ray's runtime env that brings target `name` to every worker; None when there is nothing to ship."""
    if not is_target(name):
        return None
    module_name, _ = _split(name)
    if module_name.endswith(".py"):
        path = Path(module_name)
        return {"py_modules": [str(path)], "env_vars": {SHIPPED_ENV: json.dumps({name: path.stem})}}
    top = module_name.split(".")[0]
    found = importlib.util.find_spec(top)
    if found is None or found.origin in (None, "built-in", "frozen"):
        return None
    locations = list(found.submodule_search_locations or [found.origin])
    if len(locations) != 1 or _installed(Path(locations[0]).resolve()):
        return None
    return {"py_modules": [locations[0]], "env_vars": {SHIPPED_ENV: json.dumps({name: module_name})}}
