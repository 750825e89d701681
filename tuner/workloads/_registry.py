"""The workload registry: name -> description, options dataclass and class (no if/else chains)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tuner.workloads._options import WorkloadError, parse_options, with_absolute_paths
from tuner.workloads._target import is_target, load_target


@dataclass(frozen=True)
class WorkloadInfo:
    """What the tuner knows about a workload before building it (cheap: no data, no model)."""

    name: str
    description: str
    options: type
    primary_metric: tuple[str, str]
    cls: type


_REGISTRY: dict[str, WorkloadInfo] = {}


def _info(name: str, cls: type) -> WorkloadInfo:
    doc = (cls.__doc__ or "").strip().splitlines()
    return WorkloadInfo(name, doc[0] if doc else "", cls.Options, cls.primary_metric, cls)


def register(cls: type) -> type:
    """Class decorator: add a `Workload` subclass to the registry under `cls.name`."""
    _REGISTRY[cls.name] = _info(cls.name, cls)
    return cls


def list_workloads() -> list[WorkloadInfo]:
    """Every registered workload, sorted by name."""
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]


def get_workload(name: str) -> WorkloadInfo:
    """The registered workload `name`, or the class an import target names (`tasks.py:MyTask`).

    WorkloadError lists the valid names, or names the target's file and what is wrong with it.
    """
    if is_target(name):
        return _info(name, load_target(name))
    if name not in _REGISTRY:
        raise WorkloadError(f"unknown workload {name!r} (allowed: {', '.join(sorted(_REGISTRY))}, "
                            "or an import target such as my_tasks.py:MyTask)")
    return _REGISTRY[name]


def resolve_options(name: str, options: Mapping[str, Any] | None = None, base: Path | None = None) -> dict[str, Any]:
    """Options with defaults filled, validated, as a plain dict. Loads no data or model.

    `base`: the spec's folder, against which relative path options are made absolute.
    """
    info = get_workload(name)
    if base is not None:
        options = with_absolute_paths(info.options, options or {}, base)
    return dataclasses.asdict(parse_options(name, info.options, options))


def resolve_device(device: str | torch.device) -> torch.device:
    """`auto` means CUDA when available, else CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise WorkloadError(f"device {device!r} is not a torch device (allowed: auto, cpu, cuda, cuda:N)") from exc


def create_workload(name: str, options: Mapping[str, Any] | None = None, *, seed: int = 0,
                    device: str | torch.device = "auto", num_threads: int | None = 1) -> Any:
    """Build workload `name`: the seed fixes init, splits and data order, so runs pair across methods."""
    info = get_workload(name)
    opts = parse_options(name, info.options, options)
    if num_threads:
        torch.set_num_threads(num_threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return info.cls(opts, seed=int(seed), device=resolve_device(device))
