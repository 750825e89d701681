"""Command-line interface: a thin dispatcher over the command modules (`tuner.commands.MODULES`).

Every user mistake becomes one line on stderr and exit code 2; runtime failures exit 1.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from tuner.commands import COMMANDS, MODULES
from tuner.errors import RuntimeFailure, UserError


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad arguments as a one-line UserError instead of exiting itself."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(f"{self.prog}: {message}")


def _load(name: str):
    """Import one command module; a command not built yet must not break the others."""
    try:
        return importlib.import_module(MODULES[name])
    except ModuleNotFoundError as exc:
        if exc.name != MODULES[name]:
            raise
        return None


EPILOG = """examples:
  python -m tuner run search_spaces/smoke.yaml        # a one-minute search; ends with a summary
  python -m tuner report smoke                        # the comparison dashboard (HTML + plots)
  python -m tuner export smoke -o best.yaml           # the winner, for build_optimizer(model, **load_config(...))

results go to <storage>/<name>/ (the spec's storage.path, relative to the spec file; default results/ beside it):
Ray's state, optuna.journal, mlflow.db, the resolved spec. `run` records that folder in ~/.sharptune/experiments.json
($SHARPTUNE_HOME), so the other commands find NAME from any folder (or pass --storage DIR). Full guide: README.md."""


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """Register only the command being run (so `validate` never imports Ray or MLflow); all for --help."""
    args = list(sys.argv[1:] if argv is None else argv)
    chosen = [a for a in args[:1] if a in COMMANDS]
    parser = _Parser(prog="python -m tuner", description="Tune sharpness-aware optimizers.", epilog=EPILOG,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in chosen or COMMANDS:
        module = _load(name)
        if module is not None:
            module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run the command, map errors to exit codes."""
    try:
        args = build_parser(argv).parse_args(argv)
        if getattr(args, "func", None) is None:
            raise UserError(f"python -m tuner: choose a command: {', '.join(COMMANDS)}")
        return int(args.func(args) or 0)
    except UserError as exc:
        for line in str(exc).splitlines() or [""]:  # several spec errors: one line each (tuner.spec._collect)
            print(f"error: {line}", file=sys.stderr)
        return UserError.exit_code
    except RuntimeFailure as exc:
        print(f"failed: {exc}", file=sys.stderr)
        return RuntimeFailure.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
