"""`python -m tuner dashboard NAME`: optuna-dashboard over the experiment's Optuna journal, live.

The searcher keeps the study in `<storage>/<name>/optuna.journal` (an append-only Optuna journal), so
the dashboard can watch a running experiment: trials appear as the searcher tells them, with their
intermediate values at the scheduler's clock, PRUNED/FAIL states and constraint values. With
`budget.split: per_method` each method is its own study (`<name>/<method>`, its quota in the study's
user attribute `sharptune_budget_trials`), so the dashboard shows each method's search apart. Binds
127.0.0.1 unless `--host` says otherwise; Ctrl-C stops it. Needs the extra `dashboard`.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

from tuner.commands.ui import ctrl_c_interrupts, port_free
from tuner.errors import UserError
from tuner.experiment_index import STORAGE_HELP, locate
from tuner.layout import JOURNAL_FILE, experiment_path

EXTRA = "pip install -e '.[dashboard]' (optuna-dashboard==0.21.0)"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("dashboard", help="optuna-dashboard on the experiment's study (127.0.0.1 unless --host)",
                              description="Serve optuna-dashboard over an experiment's Optuna journal; "
                                          "Ctrl-C stops it.")
    p.add_argument("name", help="experiment name")
    p.add_argument("--storage", default=None, metavar="DIR",
                   help=STORAGE_HELP)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s; 0.0.0.0 exposes it)")
    p.add_argument("--port", type=int, default=8080, help="port (default: %(default)s)")
    p.set_defaults(func=handle)


def journal_of(storage: str | Path, name: str) -> Path:
    """The experiment's journal, or a UserError that says what is missing."""
    path = experiment_path(storage, name) / JOURNAL_FILE
    if not path.is_file():
        raise UserError(f"no Optuna journal for experiment {name!r}: {path} does not exist "
                        "(start it with `python -m tuner run SPEC`, or pass --storage DIR)")
    return path


def handle(args: argparse.Namespace) -> int:
    journal = journal_of(locate(args.name, args.storage), args.name)
    if importlib.util.find_spec("optuna_dashboard") is None:
        raise UserError(f"tuner dashboard needs optuna-dashboard: {EXTRA}")
    if not port_free(args.host, args.port):
        raise UserError(f"port {args.port} on {args.host} is in use; pass --port N")
    # optuna and optuna-dashboard load only for this command (keeps the CLI's --help fast)
    import optuna_dashboard
    from optuna import get_all_study_names
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(journal)))
    shown = "127.0.0.1" if args.host in ("0.0.0.0", "") else args.host
    # split per method (the default for several methods), one study per method: `<name>/<method>`
    studies = [n for n in get_all_study_names(storage) if n == args.name or n.startswith(f"{args.name}/")]
    named = ", ".join(repr(n) for n in studies) or repr(args.name)
    print(f"Optuna dashboard: http://{shown}:{args.port}/dashboard/  (stud{'ies' if len(studies) > 1 else 'y'} "
          f"{named} in {journal}; Ctrl-C to stop)", flush=True)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: bound to {args.host}: reachable from other machines", file=sys.stderr, flush=True)
    try:
        with ctrl_c_interrupts():
            optuna_dashboard.run_server(storage, host=args.host, port=args.port)
    except KeyboardInterrupt:
        print("stopping the Optuna dashboard", file=sys.stderr)
    return 0
