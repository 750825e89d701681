"""`hf_causal_lm`: your causal-LM checkpoint on your texts, from a spec alone.

    workload:
      name: hf_causal_lm
      options: {model: my_gpt/, train: corpus.txt, validation: held_out.jsonl, seq_len: 128,
                lora: {rank: 8, target_modules: [c_attn]}}

`model` is a local checkpoint folder with its tokenizer (`AutoModelForCausalLM`, `AutoTokenizer`).
`train` and `validation` are `.txt` files (one document per line) or CSV, JSONL or Parquet files or
`save_to_disk` folders with a `text_column`; without `validation` the seed holds out a tenth of the
documents. `lora: null` (the default) fine-tunes every weight. The blocks, loss and evaluation are
`tiny_lm`'s (`tuner.workloads._hf_lm`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from tuner.workloads import _data_files
from tuner.workloads._data import split
from tuner.workloads._hf_lm import CausalLM, stream
from tuner.workloads._hf_text import check_lora, quiet_transformers, tokenizer
from tuner.workloads._options import WorkloadError, option
from tuner.workloads._registry import register

NAME = "hf_causal_lm"
HELD_OUT = 0.1


@dataclass(frozen=True)
class HFCausalLMOptions:
    model: str | None = option(None, path=True)
    train: str | None = option(None, path=True)
    validation: str | None = option(None, path=True)
    text_column: str = "text"
    lora: dict | None = None  # type: ignore[type-arg]
    seq_len: int = option(128, lambda v: 8 <= v <= 8192, "tokens per block, 8..8192")
    batch_size: int = option(8, lambda v: v >= 1, "an integer >= 1")
    eval_blocks: int | None = option(None, lambda v: v >= 1, "an integer >= 1 (validation blocks), or null for all")

    def problem(self) -> str | None:
        """Checkpoint, files, column and LoRA checked now, cheaply."""
        if self.model is None:
            return "option 'model' is required (a local causal-LM checkpoint folder with its tokenizer)"
        if self.train is None:
            return "option 'train' is required (a .txt, CSV, JSONL or Parquet file, or a save_to_disk folder)"
        _data_files.check_checkpoint(NAME, "model", Path(self.model))
        for name in ("train", "validation"):
            path = getattr(self, name)
            if path is not None:
                _data_files.check_columns(NAME, name, Path(path), {"text_column": self._column(Path(path))})
        return check_lora(NAME, self.lora)

    def _column(self, path: Path) -> str:
        return _data_files.TEXT_COLUMN if path.suffix.lower() == ".txt" else self.text_column


@lru_cache(maxsize=2)
def _pretrained(path: str) -> nn.Module:
    """The checkpoint, read once per process and never trained (each trial trains a copy)."""
    from transformers import AutoModelForCausalLM

    quiet_transformers()
    return AutoModelForCausalLM.from_pretrained(path)


@lru_cache(maxsize=4)
def _documents(path: str, column: str, model: str, key: tuple[Any, ...]) -> tuple[list[int], ...]:
    """Every document's token ids, closed by the end-of-text token (once per process and file)."""
    texts = [str(t) for t in _data_files.read(NAME, "train", Path(path), [column])[column]]
    tok = tokenizer(model)
    end = tok.eos_token_id if tok.eos_token_id is not None else tok.sep_token_id
    ids = tok(texts, add_special_tokens=False)["input_ids"]
    return tuple(list(doc) + ([end] if end is not None else []) for doc in ids)


@register
class HFCausalLM(CausalLM):
    """A local causal-LM checkpoint (LoRA or full fine-tuning) on your texts: next-token loss."""

    name = NAME
    Options = HFCausalLMOptions

    def _docs(self, path: str) -> tuple[list[int], ...]:
        file = Path(path)
        stamp = file.stat().st_mtime if file.is_file() else 0.0
        return _documents(path, self.options._column(file), self.options.model, (stamp,))

    def token_streams(self) -> tuple[Tensor, Tensor]:
        o = self.options
        train = self._docs(o.train)
        if o.validation is None:
            held, kept = split(len(train), (HELD_OUT, 1 - HELD_OUT), self.seed)
            return stream(train, kept), stream(train, held)
        val = self._docs(o.validation)
        return stream(train, torch.arange(len(train))), stream(val, torch.arange(len(val)))

    def build_model(self) -> nn.Module:
        model = copy.deepcopy(_pretrained(self.options.model))
        if self.options.lora is None:
            return model
        from peft import LoraConfig, get_peft_model

        lora = self.options.lora
        config = LoraConfig(r=int(lora.get("rank", 8)), lora_alpha=float(lora.get("alpha", 16.0)),
                            lora_dropout=float(lora.get("dropout", 0.05)),
                            target_modules=list(lora.get("target_modules", ["q_proj", "v_proj"])),
                            task_type="CAUSAL_LM")
        try:
            return get_peft_model(model, config)
        except ValueError as exc:
            raise WorkloadError(f"{NAME}: option 'lora' target_modules: {str(exc).splitlines()[0]}") from None
