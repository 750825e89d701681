"""The progress ETA: work left in grad evals over the rate so far, aware that ASHA stops trials early."""

from __future__ import annotations

import pytest

from tuner.run.progress import TrialView, eta_seconds, fmt_duration, makespan, remaining_evals


def view(evals: float, finished: bool = False) -> TrialView:
    return TrialView("sam", evals, None, finished)


def test_before_any_trial_ends_every_trial_needs_the_full_budget() -> None:
    # two running (30 and 70 of 100), six not started
    assert remaining_evals([view(30), view(70)], total=8, budget=100) == pytest.approx(70 + 30 + 6 * 100)


def test_finished_trials_set_what_the_others_will_take() -> None:
    finished = [view(25, True), view(25, True), view(100, True)]  # ASHA stopped two at the first rung
    running = [view(10), view(50)]
    # a trial at 10 expects the mean of the finals >= 10 (50); one at 50 expects 100 (only the full one got there)
    expected_running = (50 - 10) + (100 - 50)
    expected_pending = 5 * 50  # 10 trials in all, 5 seen; each takes the mean final (50)
    assert remaining_evals([*finished, *running], total=10, budget=100) == pytest.approx(
        expected_running + expected_pending)


def test_eta_is_work_left_over_rate() -> None:
    trials = [view(100, True), view(50)]  # 150 evals in 30 s: 5 per second
    assert eta_seconds(trials, total=3, budget=100, elapsed_s=30.0) == pytest.approx((50 + 100) / 5.0)
    assert eta_seconds([view(0)], total=3, budget=100, elapsed_s=30.0) is None  # no rate yet
    assert eta_seconds([], total=3, budget=100, elapsed_s=30.0) is None


def test_a_finished_phase_has_nothing_left() -> None:
    assert remaining_evals([view(40, True), view(100, True)], total=2, budget=100) == 0.0


@pytest.mark.parametrize(("seconds", "text"), [(None, "?"), (12.4, "12s"), (600, "10m"), (3900, "1h05m"),
                                               (-3, "0s"), (float("inf"), "?")])
def test_durations_read_like_a_person_writes_them(seconds: float | None, text: str) -> None:
    assert fmt_duration(seconds) == text


def test_the_tail_runs_on_fewer_slots_than_the_rate_was_measured_on() -> None:
    """Two slots gave 10 evals/s together; the last trial alone runs at 5/s, so its 100 evals take 20 s."""
    trials = [view(100, True), view(100, True), view(100, True), view(0)]  # 300 done in 30 s on 2 slots
    assert eta_seconds(trials, total=4, budget=100, elapsed_s=30.0, slots=2) == pytest.approx(100 / 5.0)
    assert makespan([100, 100, 100], 2) == 200 and makespan([30, 10, 10, 10], 2) == 30
    assert makespan([], 3) == 0


def test_a_phase_starts_from_the_rate_of_the_phase_before() -> None:
    """Confirmation runs load their models first: the search's rate sets the ETA until they report."""
    fresh = [view(1), view(1)]  # 2 evals in 30 s: model loading, not the training rate
    alone = eta_seconds(fresh, total=4, budget=100, elapsed_s=30.0, slots=2)
    with_prior = eta_seconds(fresh, total=4, budget=100, elapsed_s=30.0, slots=2, prior=(6000.0, 600.0))
    assert alone is not None and with_prior is not None
    assert with_prior == pytest.approx(makespan([99, 99, 100, 100], 2) / ((6002 / 630) / 2))
    assert with_prior < alone / 10
