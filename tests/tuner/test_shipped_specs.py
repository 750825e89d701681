"""Every spec in search_spaces/ runs as a user runs it: `tuner run SPEC`, real Ray and MLflow.

Only the size shrinks, through `--set` (the same overrides a user would type to try a spec small):
fewer and shorter trials, a smaller evaluation split, one confirmation seed; an image_classification
spec trains a small model on few images, CIFAR ones on pickles the test writes. A spec added to the
folder is covered without editing this file. Each run must exit 0, with no errored trial and a
finished trial for every method that the sampler chose.

The runs go through the CLI's `main` in this process, on one local Ray started once for the module
(`tuner run` attaches to a Ray that is already up, as it does in a notebook): ten Ray start-ups and
interpreter start-ups are the largest cost of this module otherwise.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from e2e import ROOT
from vision_files import FASHION_MISSING, data_sets

from tuner.cli import main
from tuner.run.ray_setup import QUIET_ENV
from tuner.tracking.reader import ExperimentStore
from tuner.workloads import get_workload

SPACES = ROOT / "search_spaces"
# A spec whose shrunk run takes minutes on 2 cores runs only with `python -m pytest -m opt_in` (named here,
# with why, so a new spec is in the default run unless it is listed).
OPT_IN = {"sam_cifar": "a GPU spec (WRN on CIFAR); over 2 minutes shrunk on 2 cores; sam_vision runs the "
                       "image workload through `tuner run` by default",
          "all_methods": "13 presets on LoRA, most of a minute; test_preflight steps every preset of its space on the "
                         "real workload, and bar runs the LoRA workload through `tuner run`, by default",
          "claim_admire_tiny_lm": "half a minute on the tiny LM; claim_balancedness, claim_ire_valley and "
                                  "claim_sam_edge run the claim path through `tuner run` by default, and the "
                                  "tiny_lm workload trains in tests/tuner/workloads"}
SHIPPED = [pytest.param(p, marks=pytest.mark.opt_in) if p.stem in OPT_IN else p
           for p in sorted(SPACES.glob("*.yaml"))]
TRIAL_GRAD_EVALS = 24
EVAL_EVERY = 8
FINISHED = {"completed", "pruned", "diverged"}
# workload options that only size the evaluation: small here, as a user trying a spec first would set them
SMALL_OPTIONS = {"eval_examples": 48, "eval_blocks": 4, "diag_examples": 200}
# image_classification: a small model on few images (sam_cifar.yaml's header gives the same shrink)
VISION_SMALL = {"subset": 200, "batch_size": 16}
CIFAR_SMALL = ["workload.options.model=wrn-10-1", "resources={cpu: 1, gpu: 0}", "precision=fp32"]  # GPU spec, CPU


def vision_overrides(path: Path, folder: Path) -> list[str]:
    """A vision spec on images present here (`vision_files.data_sets`: CIFAR pickles the test writes), small."""
    sets = data_sets(path, folder)
    if sets is None:
        pytest.skip(FASHION_MISSING)
    sets += [f"workload.options.{k}={v}" for k, v in VISION_SMALL.items()]
    if any("cifar" in s for s in sets):
        sets += CIFAR_SMALL
    return sets


def small_overrides(path: Path, storage: Path, tracking_uri: str) -> list[str]:
    """`--set` items that keep the spec as it is but make it small: the way to try a spec first."""
    raw = yaml.safe_load(path.read_text())
    sets = [f"storage.path={storage}", f"tracking.uri={tracking_uri}",
            f"budget.trial_grad_evals={TRIAL_GRAD_EVALS}", f"budget.eval_every={EVAL_EVERY}"]
    if (raw.get("sampler") or {}).get("name") != "grid":  # a grid's size is its points
        sets.append(f"budget.num_samples={min(raw['budget']['num_samples'], len(raw['methods']))}")
    scheduler = raw.get("scheduler") or {}
    if scheduler.get("name", "asha") in ("asha", "median"):
        sets.append(f"scheduler.grace_period={EVAL_EVERY}")
    if "max_t" in scheduler:
        sets.append(f"scheduler.max_t={TRIAL_GRAD_EVALS}")
    workload = raw["workload"]["name"]
    options = {f.name for f in dataclasses.fields(get_workload(workload).options)}  # names only: reads no data
    sets += [f"workload.options.{k}={v}" for k, v in SMALL_OPTIONS.items() if k in options]
    if workload == "image_classification":
        sets += vision_overrides(path, storage.parent / "cifar")
    confirm = raw.get("confirm")
    if confirm:
        sets.append("confirm.seeds=[0]")
        if confirm.get("label_noise"):
            sets.append(f"confirm.label_noise=[{max(confirm['label_noise'])}]")
    return sets


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One MLflow store for the module (each spec is its own experiment): its schema is made once."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING",
             _node_ip_address="127.0.0.1")
    try:
        yield
    finally:
        ray.shutdown()


@pytest.mark.slow
@pytest.mark.parametrize("path", SHIPPED, ids=[getattr(p, "values", [p])[0].stem for p in SHIPPED])
def test_shipped_spec_runs(path: Path, tmp_path: Path, local_ray: None, tracking_uri: str,
                           capfd: pytest.CaptureFixture[str]) -> None:
    overrides = [arg for item in small_overrides(path, tmp_path / "results", tracking_uri) for arg in ("--set", item)]
    code = main(["run", str(path), *overrides])
    out, err = capfd.readouterr()
    assert code == 0, f"{path.name}: exit {code}\n{out[-3000:]}\n{err[-3000:]}"
    assert "preflight: " in out and "summary of " in out
    name = yaml.safe_load(path.read_text())["name"]
    store = ExperimentStore.open(name, tracking_uri=tracking_uri)
    trials = store.trials()
    assert len(trials), f"{path.name}: no trial runs in MLflow"
    assert "errored" not in set(trials["status"]), trials[["method", "status"]].to_string()
    for method, group in trials.groupby("method"):
        assert FINISHED & set(group["status"]), f"{path.name}: {method} has no finished trial"
    saved = yaml.safe_load((tmp_path / "results" / name / "spec.yaml").read_text())
    assert saved["budget"]["trial_grad_evals"] == TRIAL_GRAD_EVALS  # the overrides are what ran
    claim = yaml.safe_load(path.read_text()).get("claim")
    if claim:  # a claim spec ends with its quantity, one row per method and setting that ran (issue 32)
        block = out[out.index("\nclaim ("):].strip().splitlines()
        assert claim["source"] in block[0] and block[-1].startswith("claimed: "), "\n".join(block)
        rows = [line.split()[0] for line in block[2:-1]]
        by = claim.get("by") or []
        settings = {(r.method, *((r.hparams | r.conditions).get(k) for k in by)) for r in trials.itertuples()}
        assert sorted(rows) == sorted(m for m, *_ in settings), "\n".join(block)
