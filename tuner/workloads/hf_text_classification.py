"""`hf_text_classification`: your transformers checkpoint on your labelled texts, from a spec alone.

    workload:
      name: hf_text_classification
      options: {model: ckpt/, train: data/train.csv, validation: data/val.csv, text_column: review,
                label_column: stars, lora: {rank: 8, target_modules: [query, value]}, k_shot: 64}

`model` is a local checkpoint folder (default: the packaged all-MiniLM-L6-v2); `train` and
`validation` are CSV, JSONL or Parquet files or `save_to_disk` folders (paths relative to the spec's
folder; without `validation` the seed holds out a tenth of `train`). Labels may be any values: they
are numbered in sorted order. `lora: null` fine-tunes every weight. The files, columns and checkpoint
are checked when the spec is (a header or schema read); the rest is `lora_text`'s code.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from tuner.workloads import _data_files
from tuner.workloads._data import split
from tuner.workloads._hf_text import EVAL_SUBSET, TextClassification, TextCorpus, check_lora
from tuner.workloads._options import option
from tuner.workloads._registry import register
from tuner.workloads.lora_text import model_dir

NAME = "hf_text_classification"
HELD_OUT = 0.1  # of `train`, when there is no `validation`


def _default_lora() -> dict[str, Any]:
    return {"rank": 8, "alpha": 16.0, "dropout": 0.05, "target_modules": ["query", "value"]}


@dataclass(frozen=True)
class HFTextClassificationOptions:
    train: str | None = option(None, path=True)
    validation: str | None = option(None, path=True)
    model: str | None = option(None, path=True)
    text_column: str = "text"
    label_column: str = "label"
    text_pair_column: str | None = None
    lora: dict | None = dataclasses.field(default_factory=_default_lora,  # type: ignore[type-arg]
                                          metadata={"check": None, "allowed": "", "path": False})
    layers: int | None = option(None, lambda v: v >= 1, "encoder layers kept, an integer >= 1, or null for all")
    pooling: Literal["auto", "model", "mean"] = "auto"
    max_seq_len: int = option(128, lambda v: 8 <= v <= 4096, "tokens, 8..4096")
    batch_size: int = option(16, lambda v: v >= 1, "an integer >= 1")
    k_shot: int | None = option(None, lambda v: v >= 1, "examples per class, an integer >= 1, or null for all")
    label_noise: float = option(0.0, lambda v: 0 <= v < 1, "a flip rate in [0, 1)")
    eval_examples: int | None = option(None, lambda v: v >= 1, "an integer >= 1 (validation examples), or null")

    def problem(self) -> str | None:
        """Files, columns, checkpoint and LoRA checked now, cheaply (a header or schema)."""
        if self.train is None:
            return "option 'train' is required (a CSV, JSONL or Parquet file, or a save_to_disk folder)"
        if self.model is not None:
            _data_files.check_checkpoint(NAME, "model", Path(self.model))
        wanted = {"text_column": self.text_column, "label_column": self.label_column,
                  "text_pair_column": self.text_pair_column}
        _data_files.check_columns(NAME, "train", Path(self.train), wanted)
        if self.validation is not None:
            _data_files.check_columns(NAME, "validation", Path(self.validation), wanted)
        return check_lora(NAME, self.lora)


def _sort_key(value: Any) -> tuple[int, Any]:
    return (0, value) if isinstance(value, (int, float)) and not isinstance(value, bool) else (1, str(value))


@register
class HFTextClassification(TextClassification):
    """A local transformers checkpoint (LoRA or full fine-tuning) on your CSV/JSONL/Parquet texts."""

    name = NAME
    Options = HFTextClassificationOptions
    eval_subset = EVAL_SUBSET

    def corpus(self) -> TextCorpus:
        o = self.options
        names = [c for c in (o.text_column, o.text_pair_column, o.label_column) if c is not None]
        train = _data_files.read(NAME, "train", Path(o.train), names)
        val = _data_files.read(NAME, "validation", Path(o.validation), names) if o.validation else None
        rows = {c: train[c] + (val[c] if val is not None else ()) for c in names}
        classes = sorted(set(rows[o.label_column]), key=_sort_key)
        number = {c: i for i, c in enumerate(classes)}
        n_train = len(train[o.label_column])
        if val is None:
            held, kept = split(n_train, (HELD_OUT, 1 - HELD_OUT), self.seed)
            train_idx, val_idx = kept, held
        else:
            train_idx, val_idx = torch.arange(n_train), torch.arange(n_train, len(rows[o.label_column]))
        key = (NAME, o.train, o.validation, tuple(names), hash(rows[o.text_column]))
        pairs = tuple(map(str, rows[o.text_pair_column])) if o.text_pair_column else None
        return TextCorpus(key=key, texts=tuple(map(str, rows[o.text_column])), pairs=pairs,
                          labels=tuple(number[v] for v in rows[o.label_column]), num_labels=max(2, len(classes)),
                          train=train_idx, val=val_idx)

    def checkpoint(self) -> str:
        return self.options.model or str(model_dir())

    def lora(self) -> dict[str, Any] | None:
        return self.options.lora

    def pooling(self) -> str:
        if self.options.pooling != "auto":
            return self.options.pooling
        sentence_model = (Path(self.checkpoint()) / "sentence_bert_config.json").exists()
        return "mean" if sentence_model else "model"  # a sentence-embedding checkpoint was trained on the mean
