"""`build_report`: the comparison dashboard of one experiment, as HTML + PNGs, logged to its parent run.

Written to `<results>/<name>/report/` (report.html, summary.csv, and each figure as PNG and, for a paper, as
SVG and PDF beside it); the HTML embeds the PNGs so it can be mailed or opened alone, and links the vector
files. Sections without data say why instead of failing.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from dashboards import overhead, plots
from dashboards.data import ReportData, collect
from dashboards.html import Section, esc, image, page, table
from tuner.results.importances import param_importances
from tuner.results.method_table import summary_csv
from tuner.results.winners import write_summary
from tuner.tracking.reader import ExperimentStore
from tuner.tracking.winner_tags import log_report

REPORT_FILE = "report.html"
VECTOR_FORMATS = ("svg", "pdf")  # beside each PNG: what a paper includes
PNG_DPI = 110


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    return f"{x:.{digits}g}" if isinstance(x, float) else str(x)


def _hp_text(hparams: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_fmt(v) if isinstance(v, float) else v}" for k, v in sorted(hparams.items())) or "—"


def _swatch(data: ReportData, method: str) -> str:
    return f'<span class="swatch" style="background:{data.style(method).color}"></span>{esc(method)}'


class _Figures:
    """Renders figures to PNG, SVG and PDF files beside the report and to embedded images."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.files: list[Path] = []

    def render(self, name: str, alt: str, make: Callable[[], Figure]) -> tuple[str, str | None]:
        try:
            fig = make()
        except plots.NoData as exc:
            return "", str(exc)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=PNG_DPI)
        path = self.out / f"{name}.png"
        path.write_bytes(buf.getvalue())
        self.files.append(path)
        for fmt in VECTOR_FORMATS:
            vector = self.out / f"{name}.{fmt}"
            fig.savefig(vector, format=fmt, metadata={"Date": None} if fmt == "svg" else None)
            self.files.append(vector)
        plt.close(fig)
        return image(name, buf.getvalue(), alt, vectors=[f"{name}.{fmt}" for fmt in VECTOR_FORMATS]), None


def _errored_cell(n_errored: int, n_runs: int, first_error: str) -> str:
    """`0/N`, or `k/N` and the first errored run's error line (tag sharptune.error) below it."""
    if not n_errored:
        return esc(f"0/{n_runs}")
    return f'<span class="errored">{esc(f"{n_errored}/{n_runs}")}</span><br><code>{esc(first_error)}</code>'


def _constraints_note(data: ReportData) -> str:
    if not data.constraints:
        return ""
    bounds = ", ".join(f"{c.metric} {'<= ' + format(c.max, 'g') if c.max is not None else ''}"
                       f"{' and ' if c.max is not None and c.min is not None else ''}"
                       f"{'>= ' + format(c.min, 'g') if c.min is not None else ''}" for c in data.constraints)
    return (f" Constraints: {esc(bounds)} (overhead = gradient evaluations per step); a method whose runs all "
            "break them has no winner; x markers in the Pareto plot are such runs.")


def _infeasible_cell(data: ReportData, method: str, n: int, n_runs: int) -> str:
    """`k/N` runs outside the constraints and the first one's violation (marked like errored runs)."""
    if not n:
        return esc(f"0/{n_runs}")
    mine = data.trials[(data.trials["method"] == method) & ~data.trials["feasible"].astype(bool)]
    return f'<span class="errored">{esc(f"{n}/{n_runs}")}</span><br><code>{esc(mine["violated"].iloc[0])}</code>'


def _target_text(table: Any) -> str:
    if "target" not in table or not len(table):
        return "(none)"
    return f"{_fmt(table['target'].iloc[0])} ({table['target_source'].iloc[0]})"


def _to_target(r: Any) -> str:
    """Median grad evals and seconds the winner's seeds take to reach the target, and the fraction that do."""
    evals, wall, reached = (r.get(k, math.nan) for k in ("evals_to_target", "wall_s_to_target", "reached_target"))
    if not isinstance(reached, float) or not math.isfinite(reached):
        return "—"
    if not math.isfinite(evals):
        return f"not reached (0/{r.get('n_target_runs', 0)})"
    return f"{evals:,.0f} · {_fmt(wall, 3)} s · {reached:.0%}"


def _summary_section(data: ReportData) -> Section:
    if not len(data.table):
        return Section("summary", "Per-method summary", empty="no trial runs in this experiment")
    rows = []
    for _, r in data.table.iterrows():
        ci = (f" ± {_fmt((r['high'] - r['low']) / 2, 2)} [{_fmt(r['low'])}, {_fmt(r['high'])}]"
              if math.isfinite(r["low"]) else "")
        best = f"{_fmt(r['mean'])}{ci} (n={r['n']})"
        if r["winner_diverged"]:
            best += " — diverged on some seed"
        if not r.get("full_budget", True):
            best += " — pruned only: a value from early in training"
        overhead = f"{_fmt(r['overhead'], 3)}× vs {r['overhead_reference']}" if math.isfinite(r["overhead"]) \
            else "—"
        rows.append([esc(r["rank"]), _swatch(data, r["method"]), esc(best), esc(overhead),
                     esc(_fmt(r["step_time_ms"], 3)),
                     esc(_fmt(r["grad_evals_per_step"], 3)), esc(_fmt(r["peak_mem_mb"], 4)),
                     esc(f"{r['n_diverged']}/{r['n_runs_total']} ({r['divergence_rate']:.0%})"),
                     _errored_cell(r["n_errored"], r["n_runs_total"], r["first_error"]),
                     esc(f"{_fmt(r['sensitivity'] * 100, 3)}% of {r['n_search']}"), esc(_to_target(r)),
                     esc(_hp_text(r["hparams"]))])
        if data.constraints:
            rows[-1].insert(9, _infeasible_cell(data, r["method"], r["n_infeasible"], r["n_runs_total"]))
    header = ["rank", "method", f"robust best {data.metric} (mean ± 95% CI half-width [low, high])",
              "overhead (step time)", "step time (ms)", "grad evals / step", "peak memory (MB)",
              "diverged runs", "errored runs (first error)", "search trials within 1% of best",
              f"to the target {_target_text(data.table)}: grad evals · seconds · seeds reaching it",
              "best hyperparameters"]
    if data.constraints:
        header.insert(9, "runs outside the constraints (first violation)")
    body = (f'<p class="note">{esc(data.robust.note)}. Ranked by the '
            f'{"lower" if data.goal == "maximize" else "upper"} end of the 95% Student-t interval '
            f"({data.goal}); configs with a diverged run rank last.{_constraints_note(data)}</p>"
            + table(header, rows, left=(1, 8, 9, 11) if data.constraints else (1, 8, 10), raw=True))
    return Section("summary", "Per-method summary", body)


HPARAM_NOTE = ("Each axis is the hyperparameter's search distribution as the experiment stored it: log scale for a "
               "log-uniform range, linear otherwise, spanning the searched range (in the axis label). Filled: "
               "completed trials (final value); hollow: pruned trials (value where they were stopped, early in "
               "training); x: diverged.")


def _hparam_section(data: ReportData, figs: _Figures) -> Section:
    parts, reasons = [], []
    for method in data.methods:
        img, why = figs.render(f"hparams_{method}", f"{method}: metric vs each searched hyperparameter",
                               lambda m=method: plots.hparam_slices(data, m))
        if why:
            reasons.append(why)
            continue
        imp, note = param_importances(data.trials, data.metric, data.goal, method, data.space.get(method))
        imp_html = (table(["hyperparameter", "importance"], [[k, f"{v:.1%}"] for k, v in imp.items()])
                    if imp else "")
        flag = 'class="note" data-importance="ok"' if imp else 'class="empty" data-importance="refused"'
        parts.append(f"<h3>{_swatch(data, method)}</h3>{img}<p {flag}>Importance: {esc(note)}</p>{imp_html}")
    if not parts:
        return Section("hyperparameters", "Hyperparameter effects", empty="; ".join(reasons) or "no methods")
    extra = f'<p class="note">{esc("; ".join(reasons))}</p>' if reasons else ""
    return Section("hyperparameters", "Hyperparameter effects",
                   f'<p class="note">{esc(HPARAM_NOTE)}</p>' + "".join(parts) + extra)


def _pareto_section(data: ReportData, figs: _Figures) -> Section:
    """The metric against the overhead, then the overhead's spread across trials and how it was measured."""
    title = "Pareto front: metric vs compute overhead"
    img, why = figs.render("pareto", f"robust {data.metric} vs step-time overhead", lambda: plots.pareto(data))
    if why:
        return Section("pareto", title, empty=why)
    spread, _ = figs.render("overhead", "step-time overhead of every trial per method",
                            lambda: overhead.overhead_spread(data))
    note = ("Big markers: each method's robust winner with its 95% interval (vertical) and the interquartile range "
            "of its trials' step-time ratios (horizontal); small: search trials, filled if completed, hollow if "
            "pruned (value at pruning).")
    return Section("pareto", title, f'<p class="note">{esc(note)}</p>{img}'
                   f'<p class="note" data-load="overhead">{esc(overhead.load_note(data))}</p>{spread}')


def _figure_section(figs: _Figures, sid: str, title: str, alt: str, make: Callable[[], Figure],
                    note: str = "") -> Section:
    img, why = figs.render(sid, alt, make)
    if why:
        return Section(sid, title, empty=why)
    return Section(sid, title, (f'<p class="note">{esc(note)}</p>' if note else "") + img)


def build_report(store: ExperimentStore, out_dir: str | Path | None = None, *, metric: str | None = None,
                 goal: str | None = None, log: bool = True) -> Path:
    """Write the report of `store`'s experiment and return the HTML path.

    With `log`, also tags the best runs and logs the summary metrics, summary.csv and the report
    folder (as `report/`) to the parent run.
    """
    data = collect(store, metric, goal)
    out = Path(out_dir) if out_dir is not None else store.results_dir / "report"
    html_path = render_report(data, out, source=store.tracking_uri)
    if log:
        write_summary(store, data.table, data.robust, data.trials)
        log_report(store, out)
    return html_path


def render_report(data: ReportData, out: Path, *, source: str = "") -> Path:
    """Write report.html, the PNGs and summary.csv for already collected data (no MLflow access)."""
    out.mkdir(parents=True, exist_ok=True)
    figs = _Figures(out)
    m = data.metric
    sections = [
        _summary_section(data),
        _figure_section(figs, "best_so_far", "Best so far vs compute", f"best {m} so far per method",
                        lambda: plots.best_so_far(data),
                        "Left and middle: the tuner's progress per method over its search trials in start order; the "
                        "line is the best completed trial so far, hollow markers are pruned trials at their value when "
                        "stopped (their cost counts, their value never becomes the best). Right: each winning "
                        "config's own training curve (step = gradient evaluations)."),
        _pareto_section(data, figs),
        _figure_section(figs, "robustness", "Robustness profile", f"{m} vs stress level per method",
                        lambda: plots.robustness(data)),
        _figure_section(figs, "ecdf", "Tuning sensitivity (ECDF over search trials)", f"ECDF of final {m}",
                        lambda: plots.ecdf(data),
                        "The curves are over completed search trials; the hollow markers below them are pruned "
                        "trials at their value when stopped, which a full run's value cannot be compared with."),
        _hparam_section(data, figs),
        _figure_section(figs, "diagnostics", "Diagnostics over training", "balancedness, λ_max vs SAM edge, Tr(H)",
                        lambda: plots.diagnostics(data),
                        " ".join(filter(None, ("Each method's winning config (mildest stress level), mean over "
                                               "its runs.", plots.missing_edge_note(data))))),
    ]
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    subtitle = (f"Experiment <b>{esc(data.name)}</b> · metric <b>{esc(m)}</b> ({esc(data.goal)}) · "
                f"{len(data.trials)} trial runs ({int((data.trials['phase'] == 'confirm').sum())} confirmation) · "
                f"MLflow {esc(source)} · generated {when}")
    html_path = out / REPORT_FILE
    html_path.write_text(page(f"sharptune report: {data.name}", subtitle, sections), encoding="utf-8")
    if len(data.table):
        (out / "summary.csv").write_text(summary_csv(data.table), encoding="utf-8")
    return html_path
