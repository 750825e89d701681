"""hf_text_classification on a checkpoint the test writes (the packaged MiniLM cut to one layer, via
`save_pretrained`) and data files it writes (CSV, Parquet, JSONL, a `save_to_disk` folder)."""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd
import pytest
import yaml

from methods import build_optimizer
from tuner.cli import main
from tuner.spec import load_spec
from tuner.workloads import create_workload
from tuner.workloads.lora_text import model_dir

GOOD, BAD = ["great", "superb", "lovely", "fine", "brilliant"], ["awful", "poor", "dull", "bad", "terrible"]
FILLER = ["the", "film", "was", "plot", "actors", "really", "quite", "story"]


def _rows(n: int, seed: int) -> pd.DataFrame:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        positive = i % 2 == 0
        words = rng.sample(FILLER, 4) + [rng.choice(GOOD if positive else BAD)]
        rng.shuffle(words)
        rows.append({"review": " ".join(words), "stars": "pos" if positive else "neg", "topic": "movie"})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from datasets import Dataset
    from transformers import AutoModel, AutoTokenizer

    root = tmp_path_factory.mktemp("hf_text")
    AutoModel.from_pretrained(model_dir(), num_hidden_layers=1).save_pretrained(root / "ckpt")
    AutoTokenizer.from_pretrained(model_dir()).save_pretrained(root / "ckpt")
    _rows(240, 0).to_csv(root / "train.csv", index=False)
    _rows(60, 1).to_parquet(root / "val.parquet")
    _rows(60, 1).to_json(root / "val.jsonl", orient="records", lines=True)
    Dataset.from_pandas(_rows(60, 1)).save_to_disk(str(root / "val_disk"))
    (root / "not_ckpt").mkdir()
    return root


def _spec(folder: Path, options: dict) -> Path:
    spec = {"name": "hf-text", "metric": {"name": "eval/accuracy", "goal": "maximize"},
            "workload": {"name": "hf_text_classification", "options": options},
            "methods": ["adamw"], "parameters": {"lr": {"value": 1e-3}},
            "budget": {"num_samples": 1, "trial_grad_evals": 10}, "storage": {"path": str(folder / "results")}}
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


BASE = {"model": "ckpt", "train": "train.csv", "validation": "val.parquet", "text_column": "review",
        "label_column": "stars", "max_seq_len": 16, "batch_size": 16}


@pytest.mark.slow
def test_full_fine_tuning_and_lora_learn_from_the_files(folder: Path) -> None:
    spec = load_spec(_spec(folder, {**BASE, "lora": None}))
    assert spec.workload.options["train"] == str(folder / "train.csv")  # relative to the spec's folder
    wl = create_workload(spec.workload.name, spec.workload.options, seed=0, device="cpu")
    assert wl.pairs == [] and wl.num_classes == 2 and wl.pooling() == "model"  # no sentence_bert_config.json
    assert len(wl.val_labels) == 60 and len(wl.labels.train) == 240
    before = wl.evaluate()["eval/accuracy"]
    opt = build_optimizer(wl.model, "adamw", lr=1e-3)
    for _ in range(20):
        opt.step(wl.closure(wl.next_batch()))
    after = wl.evaluate()["eval/accuracy"]
    assert after >= 0.9 and after > before, (before, after)
    metrics = []
    for validation in ("val.jsonl", "val_disk"):  # the same rows in the other formats: the same numbers
        lora = load_spec(_spec(folder, {**BASE, "validation": validation, "k_shot": 20, "label_noise": 0.25,
                                        "lora": {"rank": 4, "target_modules": ["query", "value"]}}))
        wl = create_workload(lora.workload.name, lora.workload.options, seed=1, device="cpu")
        assert len(wl.pairs) == 2 and len(wl.labels.train) == 40 and wl.labels.flipped_fraction == 0.25
        metrics.append(wl.evaluate())
    assert metrics[0] == pytest.approx(metrics[1])


@pytest.mark.parametrize(("change", "field", "expected"), [
    ({"train": "nope.csv"}, "workload.options.train", "nope.csv: no such file"),
    ({"validation": "ckpt"}, "workload.options.validation", "ckpt: is a folder but not one written by"),
    ({"text_column": "text"}, "workload.options.text_column",
     "'text_column' = 'text': no such column in {folder}/train.csv (columns: review, stars, topic)"),
    ({"text_pair_column": "title"}, "workload.options.text_pair_column", "no such column in {folder}/train.csv"),
    ({"model": "not_ckpt"}, "workload.options.model", "not_ckpt: not a transformers checkpoint (no config.json)"),
    ({"lora": {"rank": 0}}, "workload.options.lora", "rank = 0 is impossible"),
])
def test_bad_files_and_columns_exit_2_naming_field_and_file(folder: Path, capsys: pytest.CaptureFixture[str],
                                                          change: dict, field: str, expected: str) -> None:
    path = _spec(folder, {**BASE, **change})
    assert main(["validate", str(path), "--no-preflight"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err and field in err, err
    assert expected.format(folder=folder) in err, err
