"""Command-line interface: a thin dispatcher over `tuner.commands.<name>` modules.

Every user mistake becomes one line on stderr and exit code 2; runtime failures exit 1.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from tuner.commands import COMMANDS
from tuner.errors import RuntimeFailure, UserError


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad arguments as a one-line UserError instead of exiting itself."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m tuner", description="Tune sharpness-aware optimizers.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"tuner.commands.{name}")
        except ModuleNotFoundError as exc:  # a command not built yet must not break the others
            if exc.name != f"tuner.commands.{name}":
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run the command, map errors to exit codes."""
    try:
        args = build_parser().parse_args(argv)
        if getattr(args, "func", None) is None:
            raise UserError(f"python -m tuner: choose a command: {', '.join(COMMANDS)}")
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return UserError.exit_code
    except RuntimeFailure as exc:
        print(f"failed: {exc}", file=sys.stderr)
        return RuntimeFailure.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
