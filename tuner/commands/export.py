"""`python -m tuner export NAME`: write the winning config for `build_optimizer(model, **load_config(f))`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tuner.experiment_index import STORAGE_HELP, locate
from tuner.results.export import FORMATS, dump_config, format_for, winning_config
from tuner.tracking.reader import ExperimentStore


def add_store_arguments(parser: argparse.ArgumentParser) -> None:
    """--storage and --tracking-uri, shared by report, ui and export."""
    parser.add_argument("--storage", default=None, metavar="DIR",
                        help=STORAGE_HELP)
    parser.add_argument("--tracking-uri", default=None, metavar="URI",
                        help="MLflow tracking URI (default: sqlite:///<storage>/<name>/mlflow.db)")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("export", help="write the winning config (method + hyperparameters + provenance)",
                              description="Write the robust winner of an experiment for methods.load_config.")
    p.add_argument("name", help="experiment name")
    p.add_argument("--method", default=None, help="winner of this method instead of the overall winner")
    p.add_argument("--format", choices=FORMATS, default=None, help="yaml (default) or json (default for *.json)")
    p.add_argument("-o", "--output", default=None, metavar="FILE", help="file to write (default: stdout)")
    add_store_arguments(p)
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    storage = locate(args.name, args.storage, required=args.tracking_uri is None)
    store = ExperimentStore.open(args.name, tracking_uri=args.tracking_uri, storage=storage)
    config = winning_config(store, args.method)
    text = dump_config(config, format_for(args.output, args.format))
    if args.output is None:
        sys.stdout.write(text)
        return 0
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    m = config["provenance"]["metric"]
    low, high = m["ci95"] if m.get("ci95") else (None, None)
    interval = f"95% CI [{low:.4g}, {high:.4g}]" if low is not None and high is not None else "no interval"
    print(f"wrote {out}: {config['method']} ({m['name']} {m['mean']:.4g}, {interval}, {m['source']} runs)")
    return 0
