"""Optuna behind Ray Tune, told the truth about how each trial ended, in a study that survives restarts.

Ray's stock `OptunaSearch` tells Optuna COMPLETE with the last (low-fidelity) value when ASHA stops a
trial early, so the sampler learns from numbers that were never comparable; it reports intermediate
values against `training_iteration`; and it keeps the study in memory. `SharpSearch` fixes the three:

- a trial ASHA (or the time budget) stopped is told PRUNED; a diverged or errored one FAIL (never a
  good value); only a trial that spent its whole budget is COMPLETE (see `tuner.trial.protocol.outcome`);
- intermediate values are reported at the scheduler's clock (`cost/grad_evals` by default);
- the study is named after the experiment and lives in an Optuna journal file in the experiment
  folder; the searcher's Ray checkpoint holds only the trial-id map and the sampler, and reconnects to
  the journal on restore, so `resume` continues the same study.

The journal is the truth about which trials exist and how they ended. Ray saves its own state every
few seconds, so a driver killed in between leaves two kinds of trial that the restored Ray gets wrong:

- a trial Ray's state holds as running that the journal finished: Ray runs it again. `finished_records`
  gives the trainable the journal's record of it (`final_record`, stored with every tell), and the
  trainable replays that record instead of training (`tuner.trial.trainable`);
- an Optuna trial asked after Ray's last save: the restored Ray does not know it and samples a new
  trial in its place. The restored searcher hands that new Ray trial the orphan (`ADOPT_KEY` in its
  config names the old Ray id): a finished orphan is replayed, an unfinished one trains again from its
  start under the same Optuna trial, and the tracker moves the orphan's MLflow run to the new trial.

So Optuna, Ray and MLflow hold the same trials after any number of kills, and no finished trial trains twice.
"""

from __future__ import annotations

import logging
import pickle
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch

from tuner.layout import JOURNAL_FILE
from tuner.names import COMPLETED, ERRORED, PRUNED
from tuner.results.feasible import constraint_values
from tuner.run.initial_trials import WARM_ATTR, enqueued_params, study_name, warm_trials
from tuner.run.optuna_space import build_define, grid_search_space
from tuner.spec import Spec
from tuner.trial.protocol import ADOPT_KEY, final_record, outcome
from tuner.value_rules import is_number as _finite

logger = logging.getLogger(__name__)
STATUS_ATTR = "sharptune_status"
RAY_TRIAL_ATTR = "ray_trial_id"
RESULT_ATTR = "sharptune_result"  # the trial's last report (`final_record`), for a replay after a restore


class SpaceFn:
    """Picklable define-by-run function: `trial -> config` for the spec's conditional space (`method`:
    that method's space alone, for its own study)."""

    def __init__(self, spec: Spec, method: str | None = None) -> None:
        self.spec = spec
        self.method = method
        self._define: Any = None

    def __call__(self, trial: optuna.Trial) -> dict[str, Any]:
        if self._define is None:
            self._define = build_define(self.spec, self.method)
        return self._define(trial)

    def __getstate__(self) -> dict[str, Any]:
        return {"spec": self.spec, "method": self.method, "_define": None}


def make_sampler(spec: Spec, method: str | None = None) -> optuna.samplers.BaseSampler:
    """The spec's sampler name as an Optuna sampler, seeded by `sampler.seed` (plus the method's index in
    the spec for a method's own study: the studies do not all draw the same random numbers)."""
    seed = (spec.sampler.seed + (spec.methods.index(method) if method else 0)) % 2**32
    name = spec.sampler.name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "tpe":  # constant liar: parallel trials do not all pile onto the same point
            return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True)
        if name == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if name == "cmaes":  # `method` and other categoricals go to the independent sampler
            return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
        if name == "gp":
            return optuna.samplers.GPSampler(seed=seed, warn_independent_sampling=False)
        if name == "qmc":
            return optuna.samplers.QMCSampler(seed=seed, scramble=True, warn_independent_sampling=False)
        if name == "grid":
            return _RayGridSampler(grid_search_space(spec, method), seed=seed)
        if name == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed)
    raise ValueError(f"unknown sampler {name!r}")  # the spec validated it; a new name needs a branch here


class _RayGridSampler(optuna.samplers.GridSampler):
    """GridSampler whose last `tell` does not call `study.stop()`: that only works inside `optimize()`
    (here it raises after the trial is stored), and Ray already stops at `num_samples` = the grid's size."""

    def after_trial(self, study: optuna.Study, trial: Any, state: TrialState, values: Any) -> None:
        return None


def drop_torn_tail(path: str | Path) -> int:
    """Cut a half-written last line off the journal; returns the bytes dropped.

    A write that a full disk cut short leaves half a line at the end (its writer got the OSError, so
    nothing relied on it). Optuna reads past it only while it stays last: the next append would glue a
    good line to it and make the journal unreadable. Only the driver calls this, before a resume writes
    (a reader might otherwise cut a line the driver is still writing)."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return 0
    with open(path, "rb+") as fh:
        size = fh.seek(0, 2)
        fh.seek(max(0, size - 2**20))
        tail = fh.read()
        if tail.endswith(b"\n"):
            return 0
        keep = size - len(tail) + tail.rfind(b"\n") + 1 if b"\n" in tail else (0 if size <= 2**20 else size)
        fh.truncate(keep)
    logger.warning("optuna journal %s: dropped a half-written last line (%d bytes) left by a full disk",
                   path, size - keep)
    return size - keep


def journal_storage(path: str | Path) -> JournalStorage:
    """Optuna storage in one append-only file: survives a killed driver, needs no database server."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


def objectives(spec: Spec) -> tuple[str | list[str], str | list[str]]:
    """Ray's (metric, mode): the spec's metric, or its list of objectives."""
    if spec.objectives:
        return [o.name for o in spec.objectives], [o.mode for o in spec.objectives]
    return spec.metric.name, spec.metric.mode


# Everything of Ray's OptunaSearch that is not public API and that SharpSearch relies on, in one place;
# tests/tuner/run/test_ray_private_surface.py fails loudly when a Ray upgrade changes any of it.
RAY_PRIVATE_METHOD = "_suggest_from_define_by_run_func"  # (func, ot_trial) -> config; overridden below
RAY_PRIVATE_FIELDS = ("_ot_trials", "_ot_study", "_storage", "_sampler", "_study_name", "_mode",
                      "_completed_trials")  # read, and re-created on unpickling


class SharpSearch(OptunaSearch):
    """OptunaSearch that tells PRUNED/FAIL honestly and keeps its study in a journal file.

    `method`: the study of that method alone (`<name>/<method>`, its space only; `budget.split:
    per_method`, `tuner.run.split` holds one per method); None: one study over every method."""

    def __init__(self, spec: Spec, journal_path: str | Path, method: str | None = None) -> None:
        metric, mode = objectives(spec)
        self._journal_path = str(journal_path)
        self._time_attr = spec.scheduler.clock
        self._needs_cleanup = True  # a fresh searcher on an existing journal (resume before Ray saved)
        self._orphans: list[optuna.trial.FrozenTrial] = []
        self._constraints = tuple(spec.constraints)
        self.method = method
        super().__init__(space=SpaceFn(spec, method), metric=metric, mode=mode, sampler=make_sampler(spec, method),
                         study_name=study_name(spec.name, method), storage=journal_storage(journal_path))
        self._seed_study(spec)

    def _seed_study(self, spec: Spec) -> None:
        """A new study gets the warm start's finished trials; the queued configs go first (once: a
        resumed study finds them queued or run already)."""
        if spec.warm_start and not self._ot_study.get_trials(deepcopy=False):
            for trial in warm_trials(spec, self.method):
                self._ot_study.add_trial(trial)
        for params in enqueued_params(spec, self.method):
            self._ot_study.enqueue_trial(params, skip_if_exists=True)

    @property
    def study(self) -> optuna.Study:
        """The Optuna study this searcher asks and tells."""
        return self._ot_study

    def asked(self) -> int:
        """Trials this study has handed out, across restarts (the journal's; queued and warm-start ones not)."""
        return sum(1 for t in self._ot_study.get_trials(deepcopy=False)
                   if t.state != TrialState.WAITING and WARM_ATTR not in t.user_attrs)

    def orphans(self) -> list[optuna.trial.FrozenTrial]:
        """Optuna trials a killed driver asked that no Ray trial holds yet (the next suggestions adopt them)."""
        if self._needs_cleanup:
            self._find_orphans()
        return list(self._orphans)

    # --- suggestions ------------------------------------------------------------------------------
    def _suggest_from_define_by_run_func(self, func: Any, ot_trial: optuna.Trial) -> dict[str, Any]:
        """Only the plain-named config (the stock one also returns Optuna's `method/name` keys)."""
        return dict(func(ot_trial))

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if self._needs_cleanup:
            self._find_orphans()
        if trial_id not in self._ot_trials and self._orphans:
            return self._adopt(trial_id, self._orphans.pop(0))
        config = super().suggest(trial_id)
        trial = self._ot_trials[trial_id]
        if RAY_TRIAL_ATTR not in trial.user_attrs:
            trial.set_user_attr(RAY_TRIAL_ATTR, trial_id)
        return config

    def _adopt(self, trial_id: str, orphan: optuna.trial.FrozenTrial) -> dict[str, Any]:
        """The new Ray trial takes over an Optuna trial the killed driver asked: same values, same record."""
        before = orphan.user_attrs.get(RAY_TRIAL_ATTR) or f"optuna-{orphan.number}"
        live = optuna.Trial(self._ot_study, orphan._trial_id)
        self._ot_trials[trial_id] = live
        if orphan.state == TrialState.RUNNING:  # it trains again (from its start) and reports as the new trial
            config = dict(self._space(live))  # values it has come back; ones never suggested are sampled now
            live.set_user_attr(RAY_TRIAL_ATTR, trial_id)
        else:  # finished: its values, read back; the trainable replays its record
            config = dict(self._space(optuna.trial.FixedTrial(orphan.params, orphan.number)))
        config[ADOPT_KEY] = before
        logger.info("optuna: trial %d (Ray %s before the restart) continues as Ray trial %s",
                    orphan.number, config[ADOPT_KEY], trial_id)
        return config

    # --- results ----------------------------------------------------------------------------------
    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        """Intermediate values at the scheduler's clock, so pruned trials compare at equal cost."""
        if isinstance(self.metric, list) or trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        value, step = result.get(self.metric), result.get(self._time_attr)
        if not _finite(value) or not _finite(step):
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a retried trial reports a step again: Optuna keeps the first
            try:
                self._ot_trials[trial_id].report(float(value), int(step))
            except RuntimeError:  # UpdateFinishedTrialError: the journal finished it (a replay after a restore)
                pass

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        """COMPLETE only for a trial that spent its whole budget; PRUNED if stopped early; else FAIL."""
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        trial = self._ot_trials[trial_id]
        status = outcome(result, error)
        if result and status in (COMPLETED, PRUNED):
            self.on_trial_result(trial_id, result)  # Ray hands a scheduler's STOP result only to this hook
        state, values = TrialState.FAIL, None
        if status == COMPLETED:
            names = self.metric if isinstance(self.metric, list) else [self.metric]
            got = [(result or {}).get(n) for n in names]
            if all(_finite(v) for v in got):
                state, values = TrialState.COMPLETE, [float(v) for v in got]
            else:
                status = ERRORED  # a finished trial without a usable value must not rank
        elif status == PRUNED:
            state = TrialState.PRUNED
        try:
            trial.set_user_attr(STATUS_ATTR, status)
            trial.set_user_attr(RESULT_ATTR, final_record(result))
            constraints = getattr(self, "_constraints", ())  # Optuna 5: TPE, NSGA-II and GP read them
            for c, violation in zip(constraints, constraint_values(constraints, result or {}), strict=True):
                trial.set_constraint(c.metric, violation)
        except (ValueError, RuntimeError):
            pass  # finished already (told by an earlier driver)
        try:
            self._ot_study.tell(trial, values, state=state, skip_if_finished=True)
        except (ValueError, RuntimeError) as exc:  # e.g. told already by an earlier driver
            logger.warning("optuna: could not tell trial %s: %s", trial_id, exc)
        self._completed_trials.add(trial_id)

    # --- persistence ------------------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_ot_trials"] = {tid: t._trial_id for tid, t in self._ot_trials.items()}
        state["_ot_study"] = None
        state["_storage"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        ids: dict[str, int] = state.pop("_ot_trials")
        self.__dict__.update(state)
        self._storage = journal_storage(self._journal_path)
        directions = {"directions": ["minimize" if m == "min" else "maximize" for m in self._mode]} \
            if isinstance(self._mode, list) else {"direction": "minimize" if self._mode == "min" else "maximize"}
        self._ot_study = optuna.create_study(storage=self._storage, sampler=self._sampler, study_name=self._study_name,
                                             pruner=optuna.pruners.NopPruner(), load_if_exists=True, **directions)
        self._ot_trials = {tid: optuna.Trial(self._ot_study, storage_id) for tid, storage_id in ids.items()}
        self._needs_cleanup = True

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as fh:
            pickle.dump(self.__getstate__(), fh)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as fh:
            self.__setstate__(pickle.load(fh))

    def _find_orphans(self) -> None:
        """Optuna trials asked after Ray's last save belong to no Ray trial: queue them for adoption (the
        Ray trials the restored Ray samples in their place take them over, oldest first)."""
        known = {t._trial_id for t in self._ot_trials.values()}
        self._orphans = [t for t in self._ot_study.get_trials(deepcopy=False)
                         if t._trial_id not in known and t.state != TrialState.WAITING
                         and (t.state == TrialState.RUNNING or RAY_TRIAL_ATTR in t.user_attrs)]
        self._needs_cleanup = False


def finished_records(study: optuna.Study) -> dict[str, dict[str, Any]]:
    """Ray trial id -> how the journal says that trial ended: `{"result": last report}` or `{"error": None}`.

    What a restored trainable replays instead of training again (the errored trials' message is filled
    in by the caller from MLflow, where the tracker wrote it)."""
    out: dict[str, dict[str, Any]] = {}
    for t in study.get_trials(deepcopy=False):
        ray_id = t.user_attrs.get(RAY_TRIAL_ATTR)
        if not ray_id or not t.state.is_finished() or STATUS_ATTR not in t.user_attrs:
            continue
        if t.user_attrs[STATUS_ATTR] == ERRORED and not t.user_attrs.get(RESULT_ATTR):
            out[ray_id] = {"error": None}
        else:
            out[ray_id] = {"result": dict(t.user_attrs.get(RESULT_ATTR) or {})}
    return out


def prune_stopped(study: optuna.Study, results: Any, time_attr: str, metric: Any) -> int:
    """Trials Ray stopped without telling the searcher (its time budget stops every running trial that
    way) are PRUNED in Optuna at their last report, as ASHA's are. Returns how many."""
    running = {t.user_attrs.get(RAY_TRIAL_ATTR): t for t in study.get_trials(deepcopy=False,
                                                                            states=(TrialState.RUNNING,))}
    pruned = 0
    for r in results:
        metrics = r.metrics or {}
        frozen = running.get(metrics.get("trial_id"))
        if frozen is None or r.error is not None:
            continue
        trial = optuna.Trial(study, frozen._trial_id)
        value, step = metrics.get(metric) if isinstance(metric, str) else None, metrics.get(time_attr)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if _finite(value) and _finite(step):
                trial.report(float(value), int(step))
        trial.set_user_attr(STATUS_ATTR, PRUNED)
        trial.set_user_attr(RESULT_ATTR, final_record(metrics))
        study.tell(trial, state=TrialState.PRUNED, skip_if_finished=True)
        pruned += 1
    return pruned


def load_study(experiment_dir: str | Path, name: str) -> optuna.Study:
    """The experiment's shared study (`budget.split: shared`); `load_studies` reads either kind."""
    return optuna.load_study(study_name=name, storage=journal_storage(Path(experiment_dir) / JOURNAL_FILE))


def load_studies(experiment_dir: str | Path, name: str) -> dict[str, optuna.Study]:
    """The experiment's studies by method (split per method), or `{SHARED: study}` (one shared study).

    Read from the journal, so it needs no spec: whatever studies the run made."""
    storage = journal_storage(Path(experiment_dir) / JOURNAL_FILE)
    out: dict[str, optuna.Study] = {}
    for study_name_ in optuna.get_all_study_names(storage):
        if study_name_ == name:
            out[SHARED] = optuna.load_study(study_name=study_name_, storage=storage)
        elif study_name_.startswith(f"{name}/"):
            out[study_name_.removeprefix(f"{name}/")] = optuna.load_study(study_name=study_name_, storage=storage)
    return out


def study_trials(experiment_dir: str | Path, name: str) -> list[optuna.trial.FrozenTrial]:
    """Every trial of the experiment's studies (for counts and tests; `number`s repeat across studies)."""
    return [t for study in load_studies(experiment_dir, name).values() for t in study.get_trials(deepcopy=False)]


SHARED = "*"  # load_studies' key for the one study of `budget.split: shared`
