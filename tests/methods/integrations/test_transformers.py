"""SharpTrainer under the real `transformers.Trainer` (issue 13): a tiny random BERT, a few CPU steps.

Each run checks that the counted gradient evaluations equal the preset's declared cost times the
steps (and reach the Trainer's logs), and that the loss is finite and falls. bf16 comes from
TrainingArguments; the peft run checks that the balancer found exactly the LoRA pairs.
"""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import BertConfig, BertForSequenceClassification, TrainingArguments

from methods import ConfigError, get_method
from methods.integrations.transformers import SharpTrainer

STEPS = 6


class _Batches(torch.utils.data.Dataset):
    """16 token sequences whose label is whether token 7 occurs: learnable by a tiny BERT."""

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.ids = torch.randint(8, 64, (16, 12), generator=g)
        self.ids[:8, 3] = 7
        self.labels = (self.ids == 7).any(dim=1).long()

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "attention_mask": torch.ones(12, dtype=torch.long), "labels": self.labels[i]}


def tiny_bert() -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=37, max_position_embeddings=16, num_labels=2)
    return BertForSequenceClassification(config)


def run_trainer(model, config, tmp_path, **args) -> tuple[SharpTrainer, list[float]]:
    arguments = TrainingArguments(output_dir=str(tmp_path), max_steps=STEPS, per_device_train_batch_size=16,
                                  logging_steps=1, report_to=[], use_cpu=True, save_strategy="no",
                                  lr_scheduler_type="constant", disable_tqdm=True, **args)
    trainer = SharpTrainer(model=model, args=arguments, train_dataset=_Batches(), sharp_config=config)
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return trainer, losses


def _check(trainer: SharpTrainer, losses: list[float], config: dict) -> None:
    hp = {k: v for k, v in config.items() if k != "method"}
    declared = get_method(config["method"]).grad_evals_per_step(**hp) * STEPS
    assert trainer.sharp.counts["grad_evals"] == pytest.approx(declared)
    logged = [e for e in trainer.state.log_history if "sharp_grad_evals" in e]
    assert logged[-1]["sharp_grad_evals"] == pytest.approx(declared)
    assert len(losses) == STEPS and all(map(torch.isfinite, torch.tensor(losses)))
    assert losses[-1] < losses[0]


@pytest.mark.slow
def test_sam_under_the_trainer_in_bf16(tmp_path):
    config = {"method": "sam", "base": "adamw", "lr": 3e-3, "rho": 0.05}
    model = tiny_bert()
    dtypes = []
    model.classifier.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    trainer, losses = run_trainer(model, config, tmp_path, bf16=True)
    _check(trainer, losses, config)
    assert trainer.sharp.loss_scale.kind == "bf16" and set(dtypes) == {torch.bfloat16}
    assert len(dtypes) == 2 * STEPS  # both SAM passes ran the model, under autocast


@pytest.mark.slow
def test_nbar_finds_the_lora_pairs_of_a_peft_model_under_the_trainer(tmp_path):
    config = {"method": "nbar", "lr": 3e-3, "mu0": 0.5}
    model = get_peft_model(tiny_bert(), LoraConfig(r=4, target_modules=["query", "value"], task_type="SEQ_CLS"))
    trainer, losses = run_trainer(model, config, tmp_path)
    _check(trainer, losses, config)
    assert len(trainer.sharp.passes.pairs) == 4  # query and value of two layers
    lora = {id(p) for n, p in model.named_parameters() if "lora_" in n}
    assert {id(t) for pair in trainer.sharp.passes.pairs for t in pair} == lora


def test_gradient_accumulation_and_foreign_optimizers_are_refused(tmp_path):
    args = TrainingArguments(output_dir=str(tmp_path), gradient_accumulation_steps=2, report_to=[], use_cpu=True)
    with pytest.raises(ConfigError, match="gradient_accumulation_steps must be 1, got 2"):
        SharpTrainer(model=tiny_bert(), args=args, train_dataset=_Batches(), sharp_config={"method": "sam"})
    with pytest.raises(ConfigError, match="unknown hyperparameter 'mu0' for method 'sam'"):
        SharpTrainer(model=tiny_bert(), args=args, sharp_config={"method": "sam", "mu0": 1.0})
    with pytest.raises(ConfigError, match="no such config file"):
        SharpTrainer(model=tiny_bert(), args=args, sharp_config=tmp_path / "missing.yaml")
