"""The report's figures, checked by reading the figures' own data: axis scales, colours, marks, legends.

Every scatter and curve a figure draws carries a gid `<method>:...:<outcome>` (kept in the SVG as the element
id), so these tests find the points of one method and one outcome in the figure itself.
"""

from __future__ import annotations

import math
from dataclasses import replace
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fake_experiment import SPEC
from matplotlib.artist import Artist
from matplotlib.collections import PathCollection
from matplotlib.colors import to_hex, to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from dashboards import overhead, plots
from dashboards.colors import OKABE_ITO, method_styles
from dashboards.data import ReportData, collect
from tuner.names import STEP_TIME_MS
from tuner.results.importances import MIN_COMPLETED_FOR_IMPORTANCE, param_importances
from tuner.tracking.reader import ExperimentStore


@pytest.fixture(scope="module")
def data(fake_experiment) -> ReportData:
    return collect(ExperimentStore.open(fake_experiment.name, storage=fake_experiment.storage))


def _figures(data: ReportData) -> dict[str, Figure]:
    figs = {"best_so_far": plots.best_so_far(data), "pareto": plots.pareto(data), "ecdf": plots.ecdf(data),
            "robustness": plots.robustness(data), "diagnostics": plots.diagnostics(data),
            "overhead": overhead.overhead_spread(data)}
    figs.update({f"hparams_{m}": plots.hparam_slices(data, m) for m in data.methods})
    return figs


def _marked(fig: Figure) -> list[Artist]:
    return fig.findobj(lambda a: isinstance(a.get_gid(), str) and ":" in a.get_gid())


def _color(artist: Artist) -> str:
    if isinstance(artist, PathCollection):
        return to_hex(artist.get_edgecolors()[0])
    return to_hex(artist.get_color())


def _panels(fig: Figure) -> dict[str, object]:
    return {ax.get_title().split(": ", 1)[1]: ax for ax in fig.axes if ": " in ax.get_title()}


def _lab(hex_color: str) -> np.ndarray:
    """CIE L*a*b* (D65) of an sRGB colour, for a perceptual distance."""
    rgb = np.array(to_rgb(hex_color))
    lin = np.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ lin
    f = np.cbrt(xyz / np.array([0.95047, 1.0, 1.08883]))
    f = np.where(xyz / np.array([0.95047, 1.0, 1.08883]) > 0.008856, f,
                 7.787 * xyz / np.array([0.95047, 1.0, 1.08883]) + 16 / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


# --- axes on the search distribution's scale ---------------------------------------------------------------
def test_each_axis_is_on_its_stored_distributions_scale(data: ReportData) -> None:
    assert data.space == SPEC["space"]  # read back from the parent run's spec.yaml
    for method, space in SPEC["space"].items():
        panels = _panels(plots.hparam_slices(data, method))
        assert set(panels) == {k for k, v in space.items() if "type" in v}  # sam's fixed total_steps: no panel
        for name, ax in panels.items():
            dist = space[name]
            if dist["type"] == "categorical":
                assert [t.get_text() for t in ax.get_xticklabels()] == [str(v) for v in dist["values"]]
                continue
            assert ax.get_xscale() == ("log" if dist.get("log") else "linear"), (method, name)
            low, high = ax.get_xlim()
            assert low <= dist["low"] and high >= dist["high"], (method, name)  # the whole searched range
    gamma = _panels(plots.hparam_slices(data, "sgd_ire"))["gamma"]
    assert gamma.get_xscale() == "linear" and "gamma (linear scale, 0.5–0.99)" in gamma.get_xlabel()


def test_the_scale_is_read_from_the_space_not_guessed_from_the_values(data: ReportData) -> None:
    flipped = {m: {k: {**v, "log": not v.get("log")} if v.get("type") == "float" else v for k, v in s.items()}
               for m, s in data.space.items()}
    panels = _panels(plots.hparam_slices(replace(data, space=flipped), "sgd_ire"))
    assert (panels["lr"].get_xscale(), panels["gamma"].get_xscale()) == ("linear", "log")
    bare = _panels(plots.hparam_slices(replace(data, space={}), "sam"))
    assert bare["lr"].get_xscale() == "linear" and "no stored space" in bare["lr"].get_xlabel()
    assert [t.get_text() for t in bare["rho_schedule"].get_xticklabels()] == ["constant", "cosine"]


@pytest.mark.parametrize("log", [True, False])
def test_tiny_values_get_readable_ticks(data: ReportData, log: bool) -> None:
    """weight_decay in [1e-6, 1e-3]: no labels running into each other, no offset text, on either scale."""
    decays = iter([2e-6, 3e-5, 4e-4, 1e-5, 7e-4, 9e-4, 5e-6])
    trials = data.trials.copy()
    trials["hparams"] = [{**h, "weight_decay": next(decays)} if m == "sam" and p == "search" else h
                         for h, m, p in zip(trials["hparams"], trials["method"], trials["phase"], strict=True)]
    space = {**data.space, "sam": {**data.space["sam"],
                                   "weight_decay": {"type": "float", "low": 1e-6, "high": 1e-3, "log": log}}}
    fig = plots.hparam_slices(replace(data, trials=trials, space=space), "sam")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for name, ax in _panels(fig).items():
        low, high = ax.get_xlim()
        labels = [t for t, v in zip(ax.get_xticklabels(), ax.get_xticks(), strict=True)
                  if t.get_text() and low <= v <= high]
        boxes = sorted((t.get_window_extent(renderer) for t in labels), key=lambda b: b.x0)
        assert len(boxes) >= 2, name
        gaps = [b.x0 - a.x1 for a, b in zip(boxes, boxes[1:], strict=False)]
        assert min(gaps) >= 2, (name, [t.get_text() for t in labels])
        assert ax.xaxis.get_offset_text().get_text() == "", name
        if name != "rho_schedule":  # numbers: short (2e-5, 0.0004), never 2.0000000000000002e-05
            assert all(len(t.get_text()) <= 6 for t in labels), [t.get_text() for t in labels]
    wd = _panels(fig)["weight_decay"]
    assert wd.get_xscale() == ("log" if log else "linear")


def test_the_y_label_says_pruned_values_are_at_pruning(data: ReportData) -> None:
    for ax in _panels(plots.hparam_slices(data, "sam")).values():
        assert ax.get_ylabel() == "eval/accuracy\n(final; pruned: at pruning)"


# --- colours --------------------------------------------------------------------------------------------------
def test_one_distinct_colour_per_method_the_same_in_every_figure(data: ReportData) -> None:
    colours = {m: data.style(m).color for m in data.methods}
    assert len(set(colours.values())) == len(colours) and set(colours.values()) <= set(OKABE_ITO)
    seen: dict[str, set[str]] = {}
    for name, fig in _figures(data).items():
        for artist in _marked(fig):
            method = artist.get_gid().split(":")[0]
            if method in colours and not artist.get_gid().endswith(":expected"):
                seen.setdefault(method, set()).add(_color(artist))
                assert _color(artist) == colours[method].lower(), (name, artist.get_gid())
    assert set(seen) == set(colours)


def test_sam_and_asam_are_far_apart_and_every_pair_is_distinguishable() -> None:
    styles = method_styles(["sgd", "sam", "asam"])
    assert np.linalg.norm(_lab(styles["sam"].color) - _lab(styles["asam"].color)) > 50
    for methods in (["sgd", "sam", "asam", "sgd_ire", "sam_ire"], ["sam", "fsam", "psam", "pfsam"],
                    ["adamw", "lora_sam", "obar", "nbar"]):
        styles = method_styles(methods)
        for a, b in combinations(methods, 2):
            assert np.linalg.norm(_lab(styles[a].color) - _lab(styles[b].color)) > 20, (a, b)


def test_colours_are_stable_across_reports_and_past_nine_methods_the_marks_differ() -> None:
    assert method_styles(["sgd", "sam"])["sam"] == method_styles(["sam", "fsam", "asam"])["sam"]
    assert method_styles(["sgd", "sam", "asam"])["asam"] == method_styles(["asam"])["asam"]
    everything = ["sgd", "adamw", "sam", "asam", "psam", "fsam", "pfsam", "obar", "nbar", "lora_sam", "sgd_ire",
                  "admire", "sam_ire"]
    styles = method_styles(everything)
    assert len({(s.color, s.marker, s.linestyle) for s in styles.values()}) == len(everything)
    assert len({styles[m].color for m in everything[:9]}) == 9


# --- pruned apart from completed ----------------------------------------------------------------------------
def test_pruned_and_completed_are_drawn_apart_in_every_figure_that_has_both(data: ReportData) -> None:
    for name in ("best_so_far", "pareto", "ecdf", "overhead", "hparams_sam", "hparams_sgd"):
        fig = _figures(data)[name]
        pruned = [a for a in _marked(fig) if a.get_gid().endswith(":pruned")]
        completed = [a for a in _marked(fig) if a.get_gid().endswith(":completed")]
        assert pruned, name
        assert all(len(a.get_facecolors()) == 0 or a.get_facecolors()[0][3] == 0 for a in pruned), name  # hollow
        assert all(a.get_facecolors()[0][3] > 0 for a in completed), name  # filled
        labels = {t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()}
        assert "pruned (value at pruning)" in labels, name


def test_best_so_far_counts_completed_trials_only(data: ReportData) -> None:
    trials = data.trials.copy()
    pruned = trials.index[(trials["method"] == "sam") & (trials["status"] == "pruned")][0]
    trials.loc[pruned, "eval/accuracy"] = 0.99  # an early value better than every full run
    fig = plots.best_so_far(replace(data, trials=trials))
    best = next(a for a in _marked(fig) if a.get_gid() == "sam:best")
    completed = trials[(trials["method"] == "sam") & (trials["phase"] == "search") & (trials["status"] == "completed")]
    assert max(best.get_ydata()) == pytest.approx(completed["eval/accuracy"].max())
    hollow = next(a for a in _marked(fig) if a.get_gid() == "sam:pruned")
    assert 0.99 in hollow.get_offsets()[:, 1]  # drawn, apart
    assert fig.axes[0].get_ylabel() == "best completed eval/accuracy so far"


# --- importances ------------------------------------------------------------------------------------------------
def _study(n_completed: int, n_pruned: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n_completed + n_pruned):
        lr, rho = 10 ** rng.uniform(-3, -0.5), 10 ** rng.uniform(-2, -0.3)
        rows.append({"phase": "search", "method": "sam", "status": "completed" if i < n_completed else "pruned",
                     "hparams": {"lr": lr, "rho": rho}, "m": -abs(math.log10(lr) + 1.5) + 0.01 * rho})
    return pd.DataFrame(rows)


def test_importances_are_refused_below_the_minimum_of_completed_trials(data: ReportData) -> None:
    space = {"lr": {"type": "float", "low": 1e-3, "high": 0.3, "log": True},
             "rho": {"type": "float", "low": 0.01, "high": 0.5, "log": True}}
    few = MIN_COMPLETED_FOR_IMPORTANCE - 1
    imp, note = param_importances(_study(few, 20), "m", "maximize", "sam", space)
    assert imp == {} and f"{few} completed" in note and f"the {MIN_COMPLETED_FOR_IMPORTANCE}" in note
    imp, note = param_importances(_study(MIN_COMPLETED_FOR_IMPORTANCE + 4, 0), "m", "maximize", "sam", space)
    assert set(imp) == {"lr", "rho"} and imp["lr"] > imp["rho"]
    assert f"over {MIN_COMPLETED_FOR_IMPORTANCE + 4} completed" in note
    assert param_importances(data.trials, data.metric, data.goal, "sam", data.space["sam"])[0] == {}


# --- legends ------------------------------------------------------------------------------------------------------
def test_every_legend_entry_is_drawn(data: ReportData) -> None:
    for name, fig in _figures(data).items():
        for ax in fig.axes:
            legend = ax.get_legend()
            if legend is None:
                continue
            gids = [a.get_gid() for a in ax.findobj(lambda a: isinstance(a.get_gid(), str))]
            for text in (t.get_text() for t in legend.get_texts()):
                method = text.split(" ")[0].rstrip(":")
                if method in data.methods:
                    assert any(g.startswith(f"{method}:") for g in gids), (name, text)
                elif text.startswith(("pruned", "completed")):
                    assert any(g.endswith(":" + text.split(" ")[0]) for g in gids), (name, text)


def test_the_sam_edge_is_in_the_legend_only_where_it_is_drawn(data: ReportData) -> None:
    def lambda_panel(d: ReportData) -> object:
        return next(ax for ax in plots.diagnostics(d).axes if ax.get_title().startswith("λ_max"))

    ax = lambda_panel(data)
    dashed = [ln for ln in ax.get_lines() if str(ln.get_gid()).endswith("diag/sam_edge")]
    assert dashed and all(ln.get_linestyle() == "--" and len(ln.get_xdata()) for ln in dashed)
    assert "SAM edge" in [t.get_text() for t in ax.get_legend().get_texts()]
    no_edge = {m: {k: v for k, v in h.items() if k != "diag/sam_edge"} for m, h in data.histories.items()}
    ax = lambda_panel(replace(data, histories=no_edge))
    assert not [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    assert "SAM edge" not in [t.get_text() for t in ax.get_legend().get_texts()] and "edge" not in ax.get_title()
    assert all(isinstance(h, Line2D) for h in ax.get_legend().legend_handles)


# --- overhead: spread and load ----------------------------------------------------------------------------------
def test_overlapping_runs_are_counted() -> None:
    t = pd.to_datetime
    runs = pd.DataFrame({"start_time": [t(0, unit="s"), t(5, unit="s"), t(20, unit="s")],
                         "end_time": [t(10, unit="s"), t(15, unit="s"), t(30, unit="s")]})
    assert list(overhead.overlapping(runs)) == [1, 1, 0]


def test_overhead_figure_shows_every_trials_ratio_and_the_note_says_how_it_was_measured(data: ReportData) -> None:
    ok = data.trials[(data.trials["status"] != "diverged") & np.isfinite(data.trials[STEP_TIME_MS].astype(float))]
    sgd_median = ok.loc[ok["method"] == "sgd", STEP_TIME_MS].median()
    expected = np.sort(ok.loc[ok["method"] == "sam", STEP_TIME_MS].to_numpy() / sgd_median)
    fig = overhead.overhead_spread(data)
    drawn = np.sort(np.concatenate([a.get_offsets()[:, 1] for a in _marked(fig)
                                    if a.get_gid() in ("sam:completed", "sam:pruned")]))
    np.testing.assert_allclose(drawn, expected)
    predicted = next(a for a in _marked(fig) if a.get_gid() == "sam:expected").get_offsets()[0, 1]
    assert predicted == pytest.approx(2.0)  # SAM: two gradient evaluations per step, over sgd's one
    q1, q3 = np.quantile(expected, [0.25, 0.75])
    labels = [t.get_text() for t in plots.pareto(data).axes[0].get_legend().get_texts()]
    assert any(t.startswith("sam (") and f"IQR {q1:.2f}–{q3:.2f}" in t for t in labels), labels
    note = overhead.load_note(data)
    assert f"0 of {len(ok)} trials ran while another trial" in note and "median" in note


# --- files -----------------------------------------------------------------------------------------------------
def test_vector_files_beside_every_png_carry_the_figure_ids(built_report: Path) -> None:
    pngs = sorted(built_report.parent.glob("*.png"))
    assert len(pngs) == 9
    html = built_report.read_text(encoding="utf-8")
    for png in pngs:
        svg, pdf = png.with_suffix(".svg"), png.with_suffix(".pdf")
        assert svg.read_text(encoding="utf-8").lstrip().startswith("<?xml") and pdf.read_bytes()[:4] == b"%PDF"
        assert f'href="{svg.name}"' in html and f'href="{pdf.name}"' in html
    assert 'id="sam:rho:completed"' in (built_report.parent / "hparams_sam.svg").read_text(encoding="utf-8")
