"""Causal language modelling: the one copy of the blocks, the loss and the evaluation that
`hf_causal_lm` (your checkpoint and texts) and `tiny_lm` (a small GPT-2 on Rotten Tomatoes) share.

A subclass supplies two token streams (train, validation: documents joined, each closed by an
end-of-text token) and a freshly built model; the base cuts the streams into blocks of `seq_len`
tokens, draws batches in the seed's order and evaluates the mean next-token loss and perplexity.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tuner.workloads._base import Closure, Workload
from tuner.workloads._data import BatchSampler, to_device

EVAL_BATCH = 64
EVAL_SUBSET = 64  # validation blocks of a curve point (the first ones)


def blocks(stream: Tensor, seq_len: int) -> Tensor:
    """The stream cut into whole blocks of `seq_len` tokens (the remainder is dropped)."""
    n = len(stream) // seq_len
    return stream[: n * seq_len].view(n, seq_len)


def stream(documents: list[list[int]] | tuple[list[int], ...], indices: Tensor) -> Tensor:
    """Documents `indices` (token ids, each already closed by end-of-text) as one stream."""
    return torch.tensor([t for i in indices.tolist() for t in documents[i]], dtype=torch.long)


class CausalLM(Workload):
    """Next-token prediction on blocks of a token stream; options need seq_len, batch_size, eval_blocks."""

    primary_metric = ("eval/loss", "min")
    eval_subset = EVAL_SUBSET

    # --- what a subclass supplies
    def token_streams(self) -> tuple[Tensor, Tensor]:
        """(train, validation) token streams; no global RNG (the model's init follows)."""
        raise NotImplementedError

    def build_model(self) -> nn.Module:
        """The model (the global RNG is seeded from the trial seed)."""
        raise NotImplementedError

    def __init__(self, options: Any, *, seed: int, device: torch.device) -> None:
        super().__init__(options, seed=seed, device=device)
        from methods import find_lora_pairs

        train, val = self.token_streams()
        self.train_blocks = blocks(train, options.seq_len)
        val_blocks = blocks(val, options.seq_len)
        self.val_blocks = val_blocks[: options.eval_blocks] if options.eval_blocks else val_blocks
        self.model = self.build_model().to(device)
        self.pairs = find_lora_pairs(self.model)
        self.sampler = BatchSampler(len(self.train_blocks), options.batch_size, seed)
        self.start_training_rng()

    def _loss_and_logits(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        logits = self.model(input_ids=ids).logits
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), ids[:, 1:].reshape(-1))
        return loss, logits

    def next_batch(self) -> Tensor:
        return to_device(self.train_blocks[self.sampler.next()], self.device)

    def closure(self, batch: Tensor) -> Closure:
        def run() -> tuple[Tensor, Tensor]:
            self.model.train()
            return self._loss_and_logits(batch)
        return run

    def evaluate(self, *, subset: bool = False) -> dict[str, float]:
        """Mean next-token loss over the validation blocks (the first `EVAL_SUBSET`), and its perplexity."""
        chosen = self.val_blocks[:EVAL_SUBSET] if subset else self.val_blocks
        self.model.eval()
        total, count = torch.zeros((), dtype=torch.float64, device=self.device), 0
        with torch.inference_mode():
            for chunk in chosen.split(EVAL_BATCH):
                loss, _ = self._loss_and_logits(chunk.to(self.device))
                total += loss.double() * len(chunk)
                count += len(chunk)
        self.model.train()
        loss = float(total) / count
        return {"eval/loss": loss, "eval/perplexity": math.exp(min(loss, 50.0))}
