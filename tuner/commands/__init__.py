"""One module per CLI subcommand; each exposes `register(subparsers)`.

`register` adds its subparser and sets `func=handler`, where `handler(args) -> int` returns the exit code.
"""

COMMANDS: tuple[str, ...] = ("run", "validate", "resume", "list", "report", "ui", "dashboard", "export")
# where each command lives: here, except `report`, which the presentation package registers itself (the CLI
# imports it by name, only when it runs it or lists every command, and no tuner module imports dashboards)
MODULES: dict[str, str] = {name: f"tuner.commands.{name}" for name in COMMANDS} | {"report": "dashboards.command"}
