"""`python -m tuner report NAME`: the comparison dashboard (HTML + PNGs), logged to the parent run.

The presentation package's own command: the CLI finds it by module name (`tuner.commands.MODULES`), so data
flows one way, tuner.results -> dashboards, and no tuner module imports this package."""

from __future__ import annotations

import argparse

from tuner.commands.export import add_store_arguments
from tuner.experiment_index import locate
from tuner.tracking.reader import ExperimentStore


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("report", help="comparison dashboard (HTML + PNGs) of an experiment",
                              description="Build <storage>/<name>/report/report.html from the MLflow runs.")
    p.add_argument("name", help="experiment name")
    p.add_argument("-o", "--output", default=None, metavar="DIR", help="folder (default: <storage>/<name>/report)")
    p.add_argument("--metric", default=None, help="metric to compare (default: the spec's metric)")
    p.add_argument("--goal", choices=("maximize", "minimize"), default=None, help="default: the spec's goal")
    p.add_argument("--no-log", action="store_true", help="do not tag runs or log the report to the parent run")
    add_store_arguments(p)
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from dashboards.report import build_report  # matplotlib only when a report is asked for
    from tuner.tracking.parent_page import round_metrics

    storage = locate(args.name, args.storage, required=args.tracking_uri is None)
    store = ExperimentStore.open(args.name, tracking_uri=args.tracking_uri, storage=storage)
    path = build_report(store, args.output, metric=args.metric, goal=args.goal, log=not args.no_log)
    parent = store.parent()
    if not args.no_log and parent is not None:  # the summary metrics it logged, shown rounded as after `run`
        round_metrics(store.client, str(parent["run_id"]))
    print(f"report: {path}")
    return 0
