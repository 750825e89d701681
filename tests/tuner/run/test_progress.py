"""The progress ETA: work left in grad evals, timed by a cost model fitted on the trials so far, aware
that ASHA stops trials early and that every trial has a fixed cost besides its training."""

from __future__ import annotations

import pytest

from tuner.run.progress import (
    CostModel,
    TrialView,
    asha_final,
    eta_seconds,
    fit_cost,
    fmt_duration,
    makespan,
    remaining_evals,
)


def view(evals: float, finished: bool = False, seconds: float | None = None) -> TrialView:
    return TrialView("sam", evals, None, finished, seconds)


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


def test_trials_to_come_take_what_the_latest_finished_trials_took() -> None:
    """ASHA lets the first trials through its rungs: the later ones are stopped earlier."""
    finished = [view(100, True)] * 6 + [view(25, True)] * 6  # in Ray's order: the latest last
    assert remaining_evals(finished, total=14, budget=100) == pytest.approx(2 * 25)  # last third (4): 25 each


def test_before_any_trial_finishes_asha_predicts_how_far_trials_go() -> None:
    """Rungs 200, 600, 1800 and max_t 4000, factor 3: every trial reaches 200, a third goes on to 600,
    a ninth to 1800, a 27th to 4000: 200 + 400/3 + 1200/9 + 2200/27 grad evals on average."""
    expect = asha_final([200, 600, 1800, 4000], 3)
    assert expect(0) == pytest.approx(200 + 400 / 3 + 1200 / 9 + 2200 / 27)
    assert expect(700) == pytest.approx(1800 + 2200 / 3)  # past 600: it goes to 1800, then on with 1/3
    assert expect(4000) == 4000
    # two running (at 100 and 700) and three to come; nothing finished yet
    assert remaining_evals([view(100), view(700)], total=5, budget=4000, expect=expect) == pytest.approx(
        expect(100) - 100 + expect(700) - 700 + 3 * expect(0))
    # the first trials pass every rung (they are alone there): four at 4000 weigh as 4 of 12 against ASHA's 8
    first = [view(4000, True)] * 4
    assert remaining_evals(first, total=5, budget=4000, expect=expect) == pytest.approx(
        (4 * 4000 + 8 * expect(0)) / 12)


def test_eta_is_work_left_over_rate() -> None:
    trials = [view(100, True, 20.0), view(50, seconds=10.0)]  # 5 evals a second
    assert eta_seconds(trials, total=3, budget=100) == pytest.approx((50 + 100) / 5.0)
    assert eta_seconds([view(0, seconds=30.0)], total=3, budget=100) is None  # no rate yet
    assert eta_seconds([], total=3, budget=100) is None


def test_a_finished_phase_has_nothing_left() -> None:
    assert remaining_evals([view(40, True), view(100, True)], total=2, budget=100) == 0.0


@pytest.mark.parametrize(("seconds", "text"), [(None, "?"), (12.4, "12s"), (156, "2m35s"), (598, "10m"),
                                               (600, "10m"), (3900, "1h05m"), (-3, "0s"), (float("inf"), "?")])
def test_durations_read_like_a_person_writes_them(seconds: float | None, text: str) -> None:
    assert fmt_duration(seconds) == text


def test_the_tail_runs_on_fewer_slots_than_the_rate_was_measured_on() -> None:
    """Three trials of 100 evals took 20 s each on two slots; the last one alone still takes 20 s."""
    trials = [view(100, True, 20.0), view(100, True, 20.0), view(100, True, 20.0), view(0, seconds=0.0)]
    assert eta_seconds(trials, total=4, budget=100, slots=2) == pytest.approx(20.0)
    assert makespan([100, 100, 100], 2) == 200 and makespan([30, 10, 10, 10], 2) == 30
    assert makespan([], 3) == 0


def test_the_fixed_cost_of_a_trial_is_told_apart_from_its_training_rate() -> None:
    """ASHA stopped two trials at 25 evals (7.5 s each) and one went to 100 (15 s): 5 s of fixed cost a
    trial and 10 evals a second. Full-budget runs then take 15 s, where one rate over all the work
    (150 evals in 30 s) would say 20 s: the confirmation phase's error before this model."""
    finished = [view(25, True, 7.5), view(25, True, 7.5), view(100, True, 15.0)]
    model = fit_cost(finished)
    assert model == CostModel(pytest.approx(5.0), pytest.approx(10.0))
    assert eta_seconds([], total=4, budget=100, slots=2, prior=model) == pytest.approx(2 * 15.0)
    # a running trial has paid its fixed cost: 60 evals left take 6 s
    assert eta_seconds([*finished, view(40, seconds=9.0)], total=4, budget=100, slots=2) == pytest.approx(6.0)


def test_a_phase_starts_from_the_cost_model_of_the_phase_before() -> None:
    """Confirmation runs load their models first: the search's model sets the ETA until one finishes,
    then their own rate, averaged with the search's (its fixed cost kept)."""
    prior = CostModel(5.0, 10.0)
    fresh = [view(1, seconds=30.0), view(1, seconds=30.0)]  # 2 evals in 30 s: model loading, not training
    assert eta_seconds(fresh, total=4, budget=100, slots=2, prior=prior) == pytest.approx(
        makespan([9.9, 9.9, 15.0, 15.0], 2))
    assert eta_seconds(fresh, total=4, budget=100, slots=2) > 100 * eta_seconds(fresh, total=4, budget=100,
                                                                                  slots=2, prior=prior)
    slower = [view(100, True, 25.0), view(50, seconds=10.0)]  # finished: 100 evals in 25 - 5 s
    # its rate (5/s) averaged with the prior's (10/s) weighted as 4 runs of 1000 grad evals
    assert fit_cost(slower, prior) == CostModel(5.0, pytest.approx((100 + 4000) / (20 + 4000 / 10.0)))
    assert fit_cost(slower) == CostModel(0.0, pytest.approx(100 / 25.0))  # no phase before: its own rate


def test_the_block_says_each_methods_budget_used_and_left() -> None:
    from types import SimpleNamespace

    from tuner.run.progress import Progress

    def trial(tid: str, method: str, status: str) -> SimpleNamespace:
        return SimpleNamespace(trial_id=tid, config={"method": method, "lr": 0.1}, status=status,
                               last_result={"cost/grad_evals": 40.0, "eval/loss": 0.5})

    lines: list[str] = []
    progress = Progress(metric="eval/loss", goal="minimize", total=7, budget=200, quotas={"sgd": 4, "sam": 3},
                        write=lines.append)
    trials = [trial("a", "sgd", "TERMINATED"), trial("b", "sam", "RUNNING"), trial("c", "sgd", "RUNNING")]
    progress.block(trials)
    assert lines[1].endswith("    budget per method: sgd 2/4 (2 left), sam 1/3 (2 left)")
    shared = Progress(metric="eval/loss", goal="minimize", total=7, budget=200, write=lines.append)
    lines.clear()
    shared.block(trials)
    assert not any("budget per method" in line for line in lines)  # one shared search has no quotas
