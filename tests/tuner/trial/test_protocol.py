"""The trial vocabulary: values from Ray's config, whatever state Ray left the trial in."""

from __future__ import annotations

from tuner.trial.protocol import public_values, trial_values


def test_values_of_a_search_trial_and_of_a_confirmation_run() -> None:
    search = {"method": "sam", "lr": 0.1}
    assert trial_values(search) == search
    confirm = {"method": "sam", "lr": 0.1, "_seed": 2}
    assert trial_values({"_point": confirm}) == confirm
    assert public_values(trial_values({"_point": {"method": "sam", "_seed": 2}})) == {"method": "sam"}


def test_a_trial_whose_actor_died_before_it_started_has_no_values() -> None:
    # Ray records config=None for such a trial; the summary and the progress lines must still work.
    assert trial_values(None) == {}
    assert trial_values(None).get("method", "?") == "?"
