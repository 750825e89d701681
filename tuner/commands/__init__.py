"""One module per CLI subcommand; each exposes `register(subparsers)`.

`register` adds its subparser and sets `func=handler`, where `handler(args) -> int` returns the exit code.
"""

COMMANDS: tuple[str, ...] = ("run", "validate", "resume", "list", "report", "ui", "dashboard", "export")
