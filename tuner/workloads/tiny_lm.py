"""A tiny GPT-2 (2 layers, d=128, random init) on the Rotten Tomatoes corpus: IRE's small-LM setting.

A preset of the causal LM (`tuner.workloads._hf_lm`, which `hf_causal_lm` runs on your checkpoint
and files): this module brings only the corpus, its tokenizer and the model.

The byte-level BPE tokenizer (~4k tokens) is trained offline with `tokenizers` on every distinct text
of the corpus and cached, so it is the same for every seed and trial. Documents (not tokens) are
split 90/10 into train/validation by the seed, joined with an end-of-text token into one stream each,
and cut into blocks of `seq_len` tokens. The tokenizer and every text's tokens are kept per process, so
trials after the first in a process (Ray's `reuse_actors`) skip the tokenization.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from torch import Tensor, nn

from tuner.workloads._data import cache_dir, split
from tuner.workloads._hf_lm import CausalLM, stream
from tuner.workloads._hf_text import quiet_transformers
from tuner.workloads._options import option
from tuner.workloads._registry import register
from tuner.workloads._text_data import all_texts

EOT = "<|endoftext|>"
TOKENIZER_VERSION = 1


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


def _gpt2(options: TinyLMOptions, vocab_size: int, eot: int) -> nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel

    quiet_transformers()
    config = GPT2Config(vocab_size=vocab_size, bos_token_id=eot, eos_token_id=eot,
                        n_positions=options.seq_len, n_embd=options.d_model,
                        n_layer=options.n_layer, n_head=options.n_head, resid_pdrop=options.dropout,
                        embd_pdrop=options.dropout, attn_pdrop=options.dropout)
    return GPT2LMHeadModel(config)


@register
class TinyLM(CausalLM):
    """Randomly initialised 2-layer GPT-2 (d=128) with a ~4k BPE vocabulary on Rotten Tomatoes text."""

    name = "tiny_lm"
    Options = TinyLMOptions

    def token_streams(self) -> tuple[Tensor, Tensor]:
        self.tokenizer = load_tokenizer(self.options.vocab_size)
        train, val = split(len(all_texts()), (0.9, 0.1), self.seed)
        documents = _text_ids(self.options.vocab_size)
        return stream(documents, train), stream(documents, val)

    def build_model(self) -> nn.Module:
        return _gpt2(self.options, self.tokenizer.get_vocab_size(), self.tokenizer.token_to_id(EOT))
