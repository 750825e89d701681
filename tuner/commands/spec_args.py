"""The options `run` and `validate` share: `--set KEY=VALUE` overrides and `--no-preflight`.

Both commands take one path from the file to a checked spec (`checked_spec`), so `validate` proves
what `run` would do: the same overrides, the same checks, the same preflight.
"""

from __future__ import annotations

import argparse

from tuner.spec import Spec, load_spec


def add_spec_arguments(parser: argparse.ArgumentParser) -> None:
    """`--set KEY=VALUE` (repeatable) and `--no-preflight`."""
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="change one spec key for this run, e.g. --set budget.trial_grad_evals=60 "
                             "(repeatable; VALUE is YAML; validated like the file)")
    parser.add_argument("--no-preflight", dest="preflight", action="store_false",
                        help="skip the one-step check of every branch of the space on the real workload")


def checked_spec(args: argparse.Namespace) -> Spec:
    """The spec with its overrides, checked; then, unless `--no-preflight`, every branch takes a step."""
    spec = load_spec(args.spec, args.overrides)
    if spec.warm_start:
        # Optuna reads the earlier study only when there is one: a different space is refused here (exit 2)
        from tuner.run.initial_trials import warm_trials

        warm_trials(spec)
    if args.preflight:
        # torch and the workloads load only when a preflight runs (keeps `validate --no-preflight` instant)
        from tuner.preflight import run_preflight

        print(run_preflight(spec).line(spec.workload.name), flush=True)
    return spec
