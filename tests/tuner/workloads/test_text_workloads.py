"""The real-data workloads: LoRA on MiniLM learns Rotten Tomatoes, label noise, the tiny LM learns."""

from __future__ import annotations

import pytest
import torch

from methods import build_optimizer
from tuner.trial.trainer import Trainer
from tuner.workloads import create_workload
from tuner.workloads._text_data import reviews

SMALL = {"layers": 3, "max_seq_len": 32, "batch_size": 16, "eval_examples": 400}


@pytest.mark.slow
def test_lora_text_adamw_beats_chance_in_100_steps() -> None:
    wl = create_workload("lora_text", SMALL, seed=0, device="cpu")
    assert wl.primary_metric == ("eval/accuracy", "max")
    assert len(wl.pairs) == 2 * 3  # query and value of 3 layers
    majority = max(wl.val_labels.float().mean().item(), 1 - wl.val_labels.float().mean().item())
    opt = build_optimizer(wl.model, "adamw", lr=5e-3)
    reports = list(Trainer(wl, opt, eval_every=50, max_steps=100).run())
    final = reports[-1]
    assert final["eval/accuracy"] > 0.65 and final["eval/accuracy"] > majority + 0.05
    assert final["diag/balancedness_max"] >= final["diag/balancedness_mean"] > 0
    print(f"lora_text val accuracy after 100 steps: {final['eval/accuracy']:.3f} (majority {majority:.3f})")


@pytest.mark.slow
def test_lora_text_label_noise_flips_training_labels_only() -> None:
    wl = create_workload("lora_text", {**SMALL, "label_noise": 0.3, "k_shot": 64}, seed=1, device="cpu")
    assert len(wl.labels.train) == 128 and wl.labels.flipped_fraction == pytest.approx(0.3, abs=0.01)
    assert torch.bincount(wl.labels.clean).tolist() == [64, 64]
    clean = create_workload("lora_text", {**SMALL, "k_shot": 64}, seed=1, device="cpu")
    assert torch.equal(wl.val_labels, clean.val_labels)  # validation untouched
    assert torch.equal(wl.labels.clean, clean.labels.train)  # same k-shot subset, same split
    full_train = create_workload("lora_text", {**SMALL, "label_noise": 0.3}, seed=1, device="cpu").labels
    assert full_train.flipped_fraction == pytest.approx(0.3, abs=0.005)


def test_review_data_is_deduplicated_and_binary() -> None:
    texts, labels = reviews()
    assert len(texts) == len(set(texts)) > 12_000
    assert set(labels) == {0, 1}


def test_tiny_lm_validation_loss_drops() -> None:
    options = {"seq_len": 32, "batch_size": 16, "eval_blocks": 32}
    wl = create_workload("tiny_lm", options, seed=0, device="cpu")
    assert 3500 <= wl.tokenizer.get_vocab_size() <= 4096
    n_layer = wl.model.config.n_layer
    assert n_layer == 2 and wl.model.config.n_embd == 128
    before = wl.evaluate()["eval/loss"]
    opt = build_optimizer(wl.model, "adamw", lr=3e-3)
    final = list(Trainer(wl, opt, eval_every=40, max_steps=40).run())[-1]
    assert final["eval/loss"] < before - 1.0
    assert final["eval/perplexity"] == pytest.approx(torch.tensor(final["eval/loss"]).exp().item(), rel=1e-4)
