"""The winners as `run` records them in MLflow (tuner.results.winners): the tagged runs are the winning
configs' own, a stale tag is cleared, and the parent run carries each method's number.

Tag and metric names are written out: they are what a reader of the MLflow UI filters on."""

from __future__ import annotations

import pytest
from fake_experiment import SEARCH, write_fake_experiment  # tests/ is on sys.path (pyproject)
from mlflow.tracking import MlflowClient

from tuner.results.winners import metric_slug, tag_winners
from tuner.tracking.reader import ExperimentStore


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory):
    return write_fake_experiment(tmp_path_factory.mktemp("winners"))


def test_metric_slug_keeps_three_parts() -> None:
    assert metric_slug("eval/accuracy") == "eval_accuracy"
    assert len(f"best/sam/{metric_slug('eval/a/b')}".split("/")) == 3


def test_tag_winners_tags_the_winning_configs_runs_and_clears_a_stale_tag(fake) -> None:
    client = MlflowClient(fake.tracking_uri)
    loser = fake.search_ids["sgd"][0]  # lr 0.01: not sgd's best config
    client.set_tag(loser, "sharptune.best", "true")
    client.set_tag(loser, "sharptune.rank", "1")
    table = tag_winners(fake.name, storage=fake.storage)
    assert list(table["method"]) == ["sam", "sgd", "sgd_ire"]  # the lower bound prefers sam's tight seeds

    runs = ExperimentStore.open(fake.name, storage=fake.storage).runs(refresh=True).set_index("run_id")
    best = set(runs.index[runs["tags.sharptune.best"] == "true"])
    expected = set()
    for method, ids in fake.confirm_ids.items():  # each winner's confirmation runs and its search run
        winner_search = [rid for rid, (hp, _, _) in zip(fake.search_ids[method], SEARCH[method], strict=True)
                         if hp == fake.winners[method]]
        assert len(winner_search) == 1
        expected |= set(ids) | set(winner_search)
    assert best == expected
    assert runs.loc[loser, "tags.sharptune.best"] == "false" and runs["tags.sharptune.rank"].isna()[loser]
    ranks = {m: {runs.loc[r, "tags.sharptune.rank"] for r in fake.confirm_ids[m]} for m in fake.confirm_ids}
    assert ranks == {"sam": {"1"}, "sgd": {"2"}, "sgd_ire": {"3"}}

    parent = client.get_run(fake.parent_id).data
    assert parent.tags["sharptune.winner"] == "sam" and parent.tags["sharptune.winner_source"] == "confirm"
    for _, row in table.iterrows():
        assert parent.metrics[f"best/{row['method']}/eval_accuracy"] == pytest.approx(row["mean"])
