"""hf_causal_lm on a GPT-2 checkpoint the test writes with `save_pretrained` (the packaged MiniLM's
tokenizer, a one-layer model) and texts it writes (.txt, JSONL)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import yaml

from methods import build_optimizer
from tuner.cli import main
from tuner.spec import load_spec
from tuner.workloads import create_workload
from tuner.workloads.lora_text import model_dir

WORDS = "the cat sat on a mat and the dog ran to the park while birds sang".split()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import pandas as pd
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    root = tmp_path_factory.mktemp("hf_lm")
    tok = AutoTokenizer.from_pretrained(model_dir())
    tok.save_pretrained(root / "gpt")
    GPT2LMHeadModel(GPT2Config(vocab_size=tok.vocab_size, n_positions=64, n_embd=32, n_layer=1,
                               n_head=2)).save_pretrained(root / "gpt")
    rng = random.Random(0)
    docs = [" ".join(WORDS[rng.randrange(4):][:8]) for _ in range(300)]  # repetitive: easy to learn
    (root / "train.txt").write_text("\n".join(docs[:250]) + "\n")
    pd.DataFrame({"body": docs[250:]}).to_json(root / "val.jsonl", orient="records", lines=True)
    return root


def _spec(folder: Path, options: dict) -> Path:
    spec = {"name": "hf-lm", "metric": {"name": "eval/loss", "goal": "minimize"},
            "workload": {"name": "hf_causal_lm", "options": options},
            "methods": ["adamw"], "parameters": {"lr": {"value": 1e-3}},
            "budget": {"num_samples": 1, "trial_grad_evals": 10}, "storage": {"path": str(folder / "results")}}
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


BASE = {"model": "gpt", "train": "train.txt", "validation": "val.jsonl", "text_column": "body", "seq_len": 16,
        "batch_size": 8}


@pytest.mark.slow
def test_the_loss_drops_with_full_fine_tuning_and_lora_finds_pairs(folder: Path) -> None:
    spec = load_spec(_spec(folder, BASE))
    wl = create_workload(spec.workload.name, spec.workload.options, seed=0, device="cpu")
    before = wl.evaluate()["eval/loss"]
    opt = build_optimizer(wl.model, "adamw", lr=3e-3)
    for _ in range(25):
        opt.step(wl.closure(wl.next_batch()))
    assert wl.evaluate()["eval/loss"] < before - 1.0
    lora = load_spec(_spec(folder, {**BASE, "validation": None, "lora": {"rank": 2, "target_modules": ["c_attn"]}}))
    wl = create_workload(lora.workload.name, lora.workload.options, seed=0, device="cpu")
    assert len(wl.pairs) == 1 and len(wl.trainable_parameters()) == 2  # one layer's c_attn: B and A only
    assert len(wl.val_blocks) > 0


@pytest.mark.parametrize(("change", "field", "expected"), [
    ({"train": "nope.txt"}, "workload.options.train", "nope.txt: no such file"),
    ({"text_column": "text"}, "workload.options.text_column", "no such column in {folder}/val.jsonl (columns: body)"),
    ({"model": "."}, "workload.options.model", "not a transformers checkpoint (no config.json)"),
])
def test_bad_input_exits_2_naming_field_and_file(folder: Path, capsys: pytest.CaptureFixture[str],
                                                 change: dict, field: str, expected: str) -> None:
    path = _spec(folder, {**BASE, **change})
    assert main(["validate", str(path), "--no-preflight"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and field in err and expected.format(folder=folder) in err, err
