"""`python -m tuner ui [NAME]`: the MLflow UI on the experiment's own store, on loopback by default.

It opens on the comparison: the parent run's page, whose description holds the per-method table
(`tuner.run.comparison`), in MLflow's classic "Model training" UI, not its GenAI one. The URL it
prints goes through a page of ours (`tuner.tracking.app`, served by `tuner.tracking.server`) that
keeps the browser in that UI. The runs table opens on the saved view `sharptune-trials`
(`viewStateShareKey`, an experiment tag written by `tuner.tracking.ui.set_ui_tags`, added here to
experiments made before it existed): runs grouped by phase, best first on the spec's metric, with the
metric, method, phase, outcome and error line as columns.

The server runs in its own process group so that Ctrl-C stops it and every worker it started.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tuner.commands.export import add_store_arguments
from tuner.errors import RuntimeFailure, UserError
from tuner.experiment_index import locate
from tuner.layout import DB_NAME, DEFAULT_STORAGE
from tuner.results.winners import winners
from tuner.run.comparison import record_comparison
from tuner.tracking.parent_page import HTML_ARTIFACT, artifact_names
from tuner.tracking.reader import ExperimentStore, known_experiments
from tuner.tracking.server import default_allowed_hosts
from tuner.tracking.ui import LANDING_PATH, runs_route, set_ui_tags

READY_TIMEOUT_S = 120.0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("ui", help="MLflow UI on the experiment's store (127.0.0.1 unless --host)",
                              description="Start the MLflow UI on an experiment's store; Ctrl-C stops it.")
    p.add_argument("name", nargs="?", default=None, help="experiment (optional when the storage holds one)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s; 0.0.0.0 exposes it)")
    p.add_argument("--port", type=int, default=5000, help="port (default: %(default)s)")
    p.add_argument("--allowed-hosts", default=None, metavar="NAMES",
                   help="Host headers the server answers, comma-separated, wildcards allowed (default: localhost; "
                        "with --host other than loopback also this machine's names and private IPs)")
    add_store_arguments(p)
    p.set_defaults(func=handle)


def _resolve(args: argparse.Namespace) -> tuple[str, str | None, str | None]:
    """(tracking URI, experiment id, parent run id) to open for NAME, --tracking-uri, or the storage's only
    experiment."""
    name = args.name
    if name is None and args.tracking_uri is None:
        folder = args.storage or DEFAULT_STORAGE
        known = known_experiments(folder)
        if len(known) != 1:
            raise UserError(f"choose an experiment: python -m tuner ui NAME (in {Path(folder).resolve()}: "
                            f"{', '.join(known) or 'none'})")
        name = known[0]
    if name is None:
        return args.tracking_uri, None, None
    storage = locate(name, args.storage, required=args.tracking_uri is None)
    store = ExperimentStore.open(name, tracking_uri=args.tracking_uri, storage=storage)
    if not store.tracking_uri.startswith(("http://", "https://")):
        try:
            metric, goal = store.objective()
        except UserError:  # no metric recorded: the view still lists the runs with their method
            metric, goal = None, None
        set_ui_tags(store.client, store.experiment_id, metric, goal)
    parent = store.parent()
    if parent is None:
        return store.tracking_uri, store.experiment_id, None
    if not store.tracking_uri.startswith(("http://", "https://")):
        _backfill_comparison(store, str(parent["run_id"]))
    return store.tracking_uri, store.experiment_id, str(parent["run_id"])


def _backfill_comparison(store: ExperimentStore, parent_id: str) -> None:
    """A finished experiment made before the comparison existed gets it once (not one a driver still writes:
    its parent is RUNNING). A failure costs a warning, never the UI."""
    try:
        if store.run_status(parent_id) != "FINISHED" or comparison_artifact(store.tracking_uri, parent_id):
            return
        table, robust, trials = winners(store)
        if len(table):
            record_comparison(store, table, robust, trials)
    except Exception as exc:
        print(f"warning: could not write the comparison onto the parent run ({exc})", file=sys.stderr)


def comparison_artifact(uri: str, run_id: str | None) -> str | None:
    """The parent's comparison page when it has one (an interrupted run has none: its run page instead)."""
    if run_id is None:
        return None
    return HTML_ARTIFACT if HTML_ARTIFACT in artifact_names(uri, run_id) else None


def runs_url(base: str, experiment_id: str | None) -> str:
    """The experiment's runs table in the model-training view, with sharptune's saved view applied."""
    if not experiment_id:
        return base
    return f"{base}#{runs_route(experiment_id)}"


def landing_url(base: str, experiment_id: str | None, parent_id: str | None, artifact: str | None = None) -> str:
    """What `tuner ui` opens: our page that keeps MLflow's classic UI, then the parent's comparison."""
    if not experiment_id:
        return base
    run = f"&run={parent_id}" + (f"&artifact={artifact}" if artifact else "") if parent_id else ""
    return f"{base}{LANDING_PATH}?experiment={experiment_id}{run}"


def port_free(host: str, port: int) -> bool:
    """Whether a server could bind `host:port` now (checked before starting one, for a one-line error)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


@contextmanager
def ctrl_c_interrupts() -> Iterator[None]:
    """Ctrl-C (SIGINT) raises KeyboardInterrupt inside, even in a process started with SIGINT ignored:
    a shell starts its background jobs that way, and Python then leaves it ignored, so "Ctrl-C to
    stop" (or `kill -INT`) would do nothing and the server would run on."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _wait_ready(proc: subprocess.Popen, host: str, port: int) -> None:
    probe = "127.0.0.1" if host in ("0.0.0.0", "") else host
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeFailure(f"mlflow server exited with code {proc.returncode} before it was ready")
        try:
            with socket.create_connection((probe, port), timeout=1.0):
                return
        except OSError:
            time.sleep(0.3)
    raise RuntimeFailure(f"mlflow server did not answer on {probe}:{port} within {READY_TIMEOUT_S:.0f}s")


def _stop(proc: subprocess.Popen) -> None:
    """Terminate the server's whole process group; kill it if it does not go within 10 s."""
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def allowed_hosts(host: str, extra: str | None) -> list[str]:
    """The Host headers the server answers. MLflow's default (localhost and private IPs) refuses, with 403,
    a browser that reaches an exposed server by this machine's name; so a non-loopback `--host` adds the
    machine's own names and the bound address. DNS-rebinding protection stays: other names need
    `--allowed-hosts`."""
    hosts = default_allowed_hosts()
    if host not in LOOPBACK:
        names = {socket.gethostname(), socket.getfqdn()} | ({host} if host not in ("0.0.0.0", "", "::") else set())
        hosts += [h for name in sorted(n for n in names if n) for h in (name, f"{name}:*")]
    if extra:
        hosts += [h.strip() for h in extra.split(",") if h.strip()]
    return hosts


def handle(args: argparse.Namespace) -> int:
    uri, experiment_id, parent_id = _resolve(args)
    if uri.startswith(("http://", "https://")):
        print(f"{uri} is already a tracking server: open {runs_url(uri.rstrip('/') + '/', experiment_id)}")
        return 0
    if not port_free(args.host, args.port):
        raise UserError(f"port {args.port} on {args.host} is in use; pass --port N")
    hosts = allowed_hosts(args.host, args.allowed_hosts)
    cmd = [sys.executable, "-m", "tuner.tracking.server", "--backend-store-uri", uri,
           "--host", args.host, "--port", str(args.port), "--workers", "1", "--allowed-hosts", ",".join(hosts)]
    if uri.startswith("sqlite:///") and uri.endswith(DB_NAME):  # keep server-side artifacts beside the store
        cmd += ["--artifacts-destination", str(Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts")]
    with ctrl_c_interrupts():
        proc = subprocess.Popen(cmd, start_new_session=True)
        previous = signal.signal(signal.SIGTERM, _interrupt)  # `kill`/`timeout` stop the server too
        try:
            _wait_ready(proc, args.host, args.port)
            shown = "127.0.0.1" if args.host in ("0.0.0.0", "") else args.host
            url = landing_url(f"http://{shown}:{args.port}/", experiment_id, parent_id,
                              comparison_artifact(uri, parent_id))
            print(f"MLflow UI: {url}  (store {uri}; Ctrl-C to stop)", flush=True)
            if args.host not in LOOPBACK:
                names = sorted({socket.gethostname(), socket.getfqdn()} - set(LOOPBACK))
                print(f"warning: bound to {args.host}: reachable from other machines as {' or '.join(names)} or a "
                      "private IP; to reach it by any other name or a public IP, add it with --allowed-hosts NAME",
                      file=sys.stderr, flush=True)
            code = proc.wait()
            raise RuntimeFailure(f"mlflow server stopped with code {code}")
        except KeyboardInterrupt:
            print("stopping the MLflow UI", file=sys.stderr)
            return 0
        finally:
            _stop(proc)
            signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
