"""`python -m tuner validate SPEC`: check a spec and print the resolved config, starting nothing.

Imports neither Ray nor MLflow (a test checks `sys.modules`), so it is fast and safe anywhere.
"""

from __future__ import annotations

import argparse

import yaml

from tuner.commands.spec_args import add_spec_arguments, checked_spec


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `validate` subcommand."""
    parser = subparsers.add_parser("validate", help="check a spec and print the resolved config")
    parser.add_argument("spec", help="path to the YAML spec")
    add_spec_arguments(parser)
    parser.add_argument("--deep", action="store_true",
                        help="also run the workload contract checks (closure, seed pairing, exact state "
                             "round trip) on the spec's workload: for your own workload class")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the resolved spec (defaults filled, absolute paths, each method's space); SpecError -> exit 2.

    With `--deep`, a workload that breaks the contract (`tuner.workloads.conformance`) also exits 2.
    """
    spec = checked_spec(args)
    if args.deep:
        # torch and the workloads load only for --deep (or a preflight)
        from tuner.workloads.conformance import run_conformance

        passed = run_conformance(spec.workload.name, spec.workload.options)
        print(f"conformance: {spec.workload.name} passed {', '.join(passed)}", flush=True)
    print(yaml.safe_dump(spec.to_dict(), sort_keys=False, default_flow_style=None, width=110), end="")
    print(f"# ok: {spec.path}: {len(spec.methods)} method(s), {spec.budget.num_samples} trial(s)")
    return 0
