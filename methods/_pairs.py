"""Scale-invariant pairs (x, y) with x yᵀ the product that the loss sees: LoRA's (B, A)."""

from __future__ import annotations

from torch import Tensor, nn

Pair = tuple[Tensor, Tensor]


def find_lora_pairs(model: nn.Module) -> list[Pair]:
    """(lora_B, lora_A) weights of every trainable peft LoRA adapter in `model`.

    peft names them `<module>.lora_A.<adapter>.weight` / `<module>.lora_B.<adapter>.weight`;
    B plays x and A plays y in D = ||B||² - ||A||².
    """
    named = dict(model.named_parameters())
    pairs: list[Pair] = []
    for name, a in named.items():
        if ".lora_A." not in name or not a.requires_grad:
            continue
        b = named.get(name.replace(".lora_A.", ".lora_B."))
        if b is not None and b.requires_grad:
            pairs.append((b, a))
    return pairs
