"""A tiny GPT-2 (2 layers, d=128, random init) on the Rotten Tomatoes corpus: IRE's small-LM setting.

The byte-level BPE tokenizer (~4k tokens) is trained offline with `tokenizers` on every distinct text
of the corpus and cached, so it is the same for every seed and trial. Documents (not tokens) are
split 90/10 into train/validation by the seed, joined with an end-of-text token into one stream each,
and cut into blocks of `seq_len` tokens. The tokenizer and every text's tokens are kept per process, so
trials after the first in a process (Ray's `reuse_actors`) skip the tokenization.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tuner.workloads._base import Closure, Workload
from tuner.workloads._data import BatchSampler, cache_dir, split
from tuner.workloads._options import option
from tuner.workloads._registry import register
from tuner.workloads._text_data import all_texts

EOT = "<|endoftext|>"
TOKENIZER_VERSION = 1
EVAL_BATCH = 64
EVAL_SUBSET = 64  # validation blocks of a curve point (the first ones)


@dataclass(frozen=True)
class TinyLMOptions:
    vocab_size: int = option(4096, lambda v: 512 <= v <= 32768, "an integer in 512..32768")
    seq_len: int = option(64, lambda v: 8 <= v <= 1024, "tokens per block, 8..1024")
    d_model: int = option(128, lambda v: v >= 8, "an integer >= 8")
    n_layer: int = option(2, lambda v: 1 <= v <= 24, "an integer in 1..24")
    n_head: int = option(4, lambda v: v >= 1, "an integer >= 1 dividing d_model")
    dropout: float = option(0.0, lambda v: 0 <= v < 1, "a probability in [0, 1)")
    batch_size: int = option(16, lambda v: v >= 1, "an integer >= 1")
    eval_blocks: int | None = option(None, lambda v: v >= 1, "an integer >= 1 (validation blocks), or null for all")

    def problem(self) -> str | None:
        if self.d_model % self.n_head:
            return (f"option 'n_head' = {self.n_head} is impossible "
                    f"(allowed: a divisor of d_model = {self.d_model})")
        return None


@lru_cache(maxsize=2)
def load_tokenizer(vocab_size: int) -> Any:
    """The cached BPE tokenizer for `vocab_size`, trained on first use (deterministic, a few seconds)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    path = cache_dir() / f"tiny_lm_bpe_v{TOKENIZER_VERSION}_{vocab_size}.json"
    if path.exists():
        return Tokenizer.from_file(str(path))
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOT], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(sorted(all_texts()), trainer=trainer)
    tmp = path.with_suffix(f".{id(tokenizer)}.tmp")
    tokenizer.save(str(tmp))
    tmp.replace(path)  # atomic: concurrent trials never read half a file
    return tokenizer


@lru_cache(maxsize=2)
def _text_ids(vocab_size: int) -> tuple[list[int], ...]:
    """Every text's token ids followed by the end-of-text token, tokenized once per process."""
    tokenizer = load_tokenizer(vocab_size)
    eot = tokenizer.token_to_id(EOT)
    return tuple(encoding.ids + [eot] for encoding in tokenizer.encode_batch(all_texts()))


def _stream(vocab_size: int, indices: Tensor) -> Tensor:
    """The texts `indices` as one token stream, each closed by the end-of-text token."""
    ids = _text_ids(vocab_size)
    return torch.tensor([t for i in indices.tolist() for t in ids[i]], dtype=torch.long)


def _blocks(stream: Tensor, seq_len: int) -> Tensor:
    n = len(stream) // seq_len
    return stream[: n * seq_len].view(n, seq_len)


def _gpt2(options: TinyLMOptions, vocab_size: int, eot: int) -> nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.utils import logging

    logging.set_verbosity_error()
    config = GPT2Config(vocab_size=vocab_size, bos_token_id=eot, eos_token_id=eot,
                        n_positions=options.seq_len, n_embd=options.d_model,
                        n_layer=options.n_layer, n_head=options.n_head, resid_pdrop=options.dropout,
                        embd_pdrop=options.dropout, attn_pdrop=options.dropout)
    return GPT2LMHeadModel(config)


@register
class TinyLM(Workload):
    """Randomly initialised 2-layer GPT-2 (d=128) with a ~4k BPE vocabulary on Rotten Tomatoes text."""

    name = "tiny_lm"
    Options = TinyLMOptions
    primary_metric = ("eval/loss", "min")
    eval_subset = EVAL_SUBSET

    def __init__(self, options: TinyLMOptions, *, seed: int, device: torch.device) -> None:
        super().__init__(options, seed=seed, device=device)
        self.tokenizer = load_tokenizer(options.vocab_size)
        train, val = split(len(all_texts()), (0.9, 0.1), seed)
        self.train_blocks = _blocks(_stream(options.vocab_size, train), options.seq_len)
        val_blocks = _blocks(_stream(options.vocab_size, val), options.seq_len)
        self.val_blocks = val_blocks[: options.eval_blocks] if options.eval_blocks else val_blocks
        vocab, eot = self.tokenizer.get_vocab_size(), self.tokenizer.token_to_id(EOT)
        self.model = _gpt2(options, vocab, eot).to(device)
        self.sampler = BatchSampler(len(self.train_blocks), options.batch_size, seed)
        self.start_training_rng()

    def _loss_and_logits(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        logits = self.model(input_ids=ids).logits
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), ids[:, 1:].reshape(-1))
        return loss, logits

    def next_batch(self) -> Tensor:
        return self.train_blocks[self.sampler.next()].to(self.device)

    def closure(self, batch: Tensor) -> Closure:
        def run() -> tuple[Tensor, Tensor]:
            self.model.train()
            return self._loss_and_logits(batch)
        return run

    def evaluate(self, *, subset: bool = False) -> dict[str, float]:
        """Mean next-token loss over the validation blocks (the first `EVAL_SUBSET`), and its perplexity."""
        blocks = self.val_blocks[:EVAL_SUBSET] if subset else self.val_blocks
        self.model.eval()
        total, count = torch.zeros((), dtype=torch.float64, device=self.device), 0
        with torch.inference_mode():
            for chunk in blocks.split(EVAL_BATCH):
                loss, _ = self._loss_and_logits(chunk.to(self.device))
                total += loss.double() * len(chunk)
                count += len(chunk)
        self.model.train()
        loss = float(total) / count
        return {"eval/loss": loss, "eval/perplexity": math.exp(min(loss, 50.0))}
