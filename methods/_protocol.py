"""The two closure conventions a `SharpOptimizer.step` accepts.

- `outputs` (default): the closure runs the forward pass and returns `(loss, outputs)` without calling
  backward; the method takes every gradient it needs with `torch.autograd.grad`. It sees the model's
  outputs, which Functional-SAM and the Fisher passes need.
- `backward`: torch's convention (davda54/sam, pytorch-optimizer): the closure zeroes the gradients,
  computes the loss, calls `backward()` and returns the loss. The method reads `p.grad`. It never sees
  the outputs, so the presets and options that need them refuse it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from methods._errors import ConfigError
from methods._parts import parts_of
from methods._registry import MethodInfo

CLOSURE_STYLES = ("outputs", "backward")
BACKWARD_CLOSURE = ("the closure called backward() itself (torch's and davda54/sam's convention): pass "
                    "closure_style=\"backward\" to build_optimizer, or return (loss, outputs) without calling backward")


@contextlib.contextmanager
def explain_backward_closure() -> Iterator[None]:
    """Under the default style, a closure that called backward() itself makes the method's own gradient
    fail with autograd's "backward through the graph a second time": say what happened and the fix."""
    try:
        yield
    except RuntimeError as exc:
        if "backward through the graph a second time" not in str(exc):
            raise
        raise ConfigError(BACKWARD_CLOSURE) from None


def check_closure_style(info: MethodInfo, hparams: Mapping[str, Any], style: str, precision: str) -> None:
    """Raise ConfigError when `style` cannot serve this method with these hyperparameters."""
    if style not in CLOSURE_STYLES:
        raise ConfigError(f"closure_style must be one of {', '.join(CLOSURE_STYLES)}; got {style!r}")
    if style == "outputs":
        return
    default = "the default closure_style='outputs' (a forward-only closure returning (loss, logits))"
    for part in parts_of(info.preset, hparams):  # Functional-SAM, the Fisher passes
        reason = part.needs_outputs(info.name, hparams)
        if reason is not None:
            why, instead = reason
            raise ConfigError(f"{why}, which a backward closure does not return; use {default}, or {instead}")
    if precision == "fp16":
        raise ConfigError("precision 'fp16' scales each pass's loss before its backward, which a backward closure "
                          f"does itself; use {default}, or precision 'bf16'")
