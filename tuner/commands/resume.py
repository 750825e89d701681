"""`python -m tuner resume NAME`: continue an interrupted experiment where it stopped.

The search restarts from Ray's experiment state (unfinished and errored trials continue from their
checkpoints) with the same Optuna study and the same MLflow runs; then the confirmation phase runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tuner.experiment_index import STORAGE_HELP, locate, remember


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `resume` subcommand."""
    parser = subparsers.add_parser("resume", help="continue an interrupted experiment")
    parser.add_argument("name", help="experiment name (or its folder, or the spec file that started it)")
    parser.add_argument("--storage", default=None, metavar="DIR",
                        help=STORAGE_HELP)
    parser.add_argument("--address", default=None,
                        help="attach to a running Ray cluster (default: RAY_ADDRESS, else a private local Ray)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Find the experiment (exit 2 if unknown or finished) and continue it."""
    from tuner.run.experiment import resume_experiment  # Ray and MLflow only when a run resumes

    storage = args.storage
    if storage is None and not Path(args.name).expanduser().exists():  # a name, not a folder or a spec file
        storage = str(locate(args.name, None))
    if storage is not None:
        remember(args.name, storage)
    return resume_experiment(args.name, storage=storage, address=args.address)
