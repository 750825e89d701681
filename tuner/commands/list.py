"""`python -m tuner list`: the experiments, with status and trial counts, from any folder.

Without `--storage` it shows ./results and every folder `run` recorded (`tuner.experiment_index`), so an
experiment whose spec put it beside the spec file is listed wherever the user stands. Reads only each
experiment's `sharptune.json` (never the MLflow store, never starts Ray).
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import Any

from tuner.errors import UserError
from tuner.experiment_index import INDEX_FILE, index_path, storages
from tuner.layout import DEFAULT_STORAGE, experiment_folders, read_state, shown_status


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `list` subcommand."""
    parser = subparsers.add_parser("list", help="list experiments with status and trial counts")
    parser.add_argument("--storage", default=None, metavar="DIR",
                        help="results folder (default: ./results and every folder `run` recorded in "
                             f"~/.sharptune/{INDEX_FILE})")
    parser.set_defaults(func=run)


def budget_text(budget: Any) -> str:
    """`sgd 4/4, sam 3/4 (1 left)`: each method's trials handed out of its quota (`budget.split: per_method`)."""
    if not isinstance(budget, dict) or not budget:
        return "-"
    parts = []
    for method, b in budget.items():
        used, quota = int(b.get("used", 0)), int(b.get("of", 0))
        parts.append(f"{method} {used}/{quota}" + (f" ({quota - used} left)" if used < quota else ""))
    return ", ".join(parts)


def run(args: argparse.Namespace) -> int:
    """One line per experiment: name, status, phase, trials (completed/pruned/diverged/errored), start."""
    roots = storages(args.storage)
    if args.storage is not None and not roots[0].is_dir():
        raise UserError(f"no results folder {roots[0]} (pass --storage DIR)")
    folders = [f for root in roots for f in experiment_folders(root)]
    if not folders:
        print(f"no experiments in {Path(DEFAULT_STORAGE).resolve()}" if args.storage is None
              else f"no experiments in {roots[0]}")
        if args.storage is None:
            print(f"(nor in any folder recorded in {index_path()}; pass --storage DIR)")
        return 0
    print(f"{'name':<28}{'status':<13}{'phase':<9}{'trials c/p/d/e':<18}{'started':<18}trials used/quota per method")
    for folder in folders:
        state = read_state(folder)
        t = state.get("trials") or {}
        trials = f"{t.get('completed', 0)}/{t.get('pruned', 0)}/{t.get('diverged', 0)}/{t.get('errored', 0)}" \
            if t else "-"
        started = dt.datetime.fromtimestamp(state["started"]).strftime("%Y-%m-%d %H:%M") \
            if isinstance(state.get("started"), (int, float)) else "-"
        print(f"{folder.name:<28}{shown_status(state):<13}{state.get('phase', '-'):<9}{trials:<18}{started:<18}"
              f"{budget_text(state.get('budget'))}")
    counts = {root: len(experiment_folders(root)) for root in roots}
    print("(" + "; ".join(f"{n} in {root}" for root, n in counts.items() if n) + ")")
    return 0
