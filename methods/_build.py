"""`build_optimizer`: the one entry point from a model (or parameters) and a method name."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from methods._errors import ConfigError
from methods._optimizer import SharpOptimizer
from methods._pairs import Pair, find_lora_pairs
from methods._registry import BuildContext, get_method


def build_optimizer(model_or_params: nn.Module | Iterable[Tensor] | Iterable[tuple[str, Tensor]]
                    | Iterable[dict[str, Any]], method: str, *,
                    pairs: Sequence[Pair] | None = None, **hparams: Any) -> SharpOptimizer:
    """Build `method` over a module's trainable parameters (or explicit parameters, named parameters
    as `model.named_parameters()` gives them, or parameter groups).

    Parameter names matter to ASAM only (official rule: it scales tensors named *weight*); without
    names, tensors with two or more dimensions count as weights.

    From a module, LoRA pairs are found automatically (peft lora_A / lora_B) and BatchNorm layers
    are frozen during the extra passes. Raises ConfigError for unknown names or bad values.
    """
    info = get_method(method)
    resolved = info.resolve(hparams)
    names: dict[int, str] = {}
    if isinstance(model_or_params, nn.Module):
        named = [(n, p) for n, p in model_or_params.named_parameters() if p.requires_grad]
        params: list[Any] = [p for _, p in named]
        names = {id(p): n for n, p in named}
        found = find_lora_pairs(model_or_params) if pairs is None else list(pairs)
        batchnorms = [m for m in model_or_params.modules() if isinstance(m, _BatchNorm)]
    else:
        params, found, batchnorms = list(model_or_params), list(pairs or []), []
        if params and all(isinstance(item, tuple) for item in params):  # named_parameters()
            names = {id(p): n for n, p in params}
            params = [p for _, p in params]
    if not params:
        raise ConfigError(f"{method}: no trainable parameters")
    if info.needs_pairs and not found:
        raise ConfigError(f"{method} acts on scale-invariant pairs, but none were found: pass a peft LoRA model "
                          "or pairs=[(x, y), ...]")
    if info.plugin:  # register_method: the method builds itself
        model = model_or_params if isinstance(model_or_params, nn.Module) else None
        return info.build(params, resolved, BuildContext(model, names, found, batchnorms))
    return SharpOptimizer(params, info=info, hparams=resolved, pairs=found, batchnorms=batchnorms, names=names)
