"""`python -m tuner run SPEC`: the search (and confirmation phase) of one spec, tracked in MLflow.

Ray and MLflow are imported only when the command runs, so other commands stay fast.
"""

from __future__ import annotations

import argparse

from tuner.commands.spec_args import add_spec_arguments, checked_spec
from tuner.experiment_index import remember


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `run` subcommand."""
    parser = subparsers.add_parser("run", help="run the experiment a spec describes")
    parser.add_argument("spec", help="path to the YAML spec")
    add_spec_arguments(parser)
    parser.add_argument("--address", default=None,
                        help="attach to a running Ray cluster (default: RAY_ADDRESS, else a private local Ray)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load the spec and preflight it (exit 2 if bad), refuse a used name, run; 0 done, 1 failure, 130 interrupted."""
    spec = checked_spec(args)  # before Ray or MLflow are even imported
    from tuner.run.experiment import Experiment  # Ray and MLflow only once the spec passed its checks

    remember(spec.name, spec.storage_path)  # so that report/export/... find it by name from any folder

    return Experiment(spec, address=args.address).run(resume=False)
