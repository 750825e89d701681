"""SharpSearch leans on a few private parts of Ray's OptunaSearch (listed in `tuner.run.searcher`).
If a Ray upgrade renames or reshapes any of them, this fails first, naming what changed."""

from __future__ import annotations

import inspect
from pathlib import Path

from e2e import smoke_spec
from ray.tune.search.optuna import OptunaSearch

from tuner.run.searcher import RAY_PRIVATE_FIELDS, RAY_PRIVATE_METHOD, SharpSearch
from tuner.spec import load_spec


def test_ray_still_has_the_overridden_method_with_the_same_signature() -> None:
    stock = getattr(OptunaSearch, RAY_PRIVATE_METHOD, None)
    assert stock is not None, f"Ray's OptunaSearch no longer has {RAY_PRIVATE_METHOD}: SharpSearch's override is dead"
    assert list(inspect.signature(stock).parameters) == ["self", "func", "ot_trial"], \
        f"Ray changed {RAY_PRIVATE_METHOD}'s signature: {inspect.signature(stock)}"
    assert RAY_PRIVATE_METHOD in SharpSearch.__dict__


def test_ray_still_calls_the_overridden_method_from_suggest() -> None:
    assert RAY_PRIVATE_METHOD in inspect.getsource(OptunaSearch.suggest), \
        f"OptunaSearch.suggest no longer calls {RAY_PRIVATE_METHOD}: configs may carry Optuna's method/name keys"


def test_ray_still_has_the_private_fields(tmp_path: Path) -> None:
    search = SharpSearch(load_spec(smoke_spec(tmp_path)), tmp_path / "journal")
    search.suggest("t1")
    missing = [name for name in RAY_PRIVATE_FIELDS if name not in search.__dict__]
    assert missing == [], f"Ray's OptunaSearch no longer sets {missing}: SharpSearch's pickling must change"


def test_ray_adds_no_tensorboard_logger_beside_ours() -> None:
    """Ray adds CSV, JSON and TensorBoard loggers unless the callbacks hold one of each kind
    (`_create_default_callbacks`, private): ours keep the JSON and CSV logs and stand in for TensorBoard."""
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback, TBXLoggerCallback
    from ray.tune.utils.callback import _create_default_callbacks

    from tuner.run.ray_setup import NoTensorboard, logger_callbacks

    made = _create_default_callbacks(logger_callbacks(), metric="eval/loss", mode="min")
    tensorboard = [c for c in made if isinstance(c, TBXLoggerCallback)]
    assert len(tensorboard) == 1 and isinstance(tensorboard[0], NoTensorboard)
    assert sum(isinstance(c, JsonLoggerCallback) for c in made) == 1
    assert sum(isinstance(c, CSVLoggerCallback) for c in made) == 1


def test_ray_trials_still_hold_what_the_stall_watch_uses() -> None:
    """`tuner.run.stall` kills a silent trial's actor (`temporary_state.ray_actor`) after setting its
    `max_failures` to 0, which `Trial.should_recover` reads, so the hang is not retried."""
    from ray.tune.experiment import Trial

    trial = Trial("noop", stub=True, max_failures=3)
    assert hasattr(trial.temporary_state, "ray_actor")
    trial.max_failures = 0
    trial.run_metadata.num_failures = 1
    assert not trial.should_recover()
    assert "self.max_failures" in inspect.getsource(Trial.should_recover)
