"""The parts' contract (methods/_kinds.py): a part sees the optimizer only through `Passes`, and each kind has
one Protocol and one constructor, `cls(passes, scope)`, that every registered part follows.

A family file is any module of methods/ that registers a part with `@part`; in it, a name that starts with
an underscore is read only on `self` or `cls` (its own) or on `torch` (the foreach kernels).
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
import torch
from torch import nn

from methods import build_optimizer
from methods._kinds import PROTOCOLS
from methods._parts import KINDS, PARTS

ROOT = Path(__file__).resolve().parents[2]
OWNERS = {"self", "cls", "torch"}


def _registers_parts(path: Path) -> bool:
    return "@part(" in path.read_text(encoding="utf-8")


FAMILY_FILES = sorted(p for p in (ROOT / "methods").glob("*.py") if _registers_parts(p) and p.name != "_parts.py")


def _reach_ins(source: str) -> list[str]:
    """Every `x._name` (not a dunder) where x is not self, cls or torch: a reach into another object's privates."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            owner = node.value.id if isinstance(node.value, ast.Name) else None
            if owner not in OWNERS:
                out.append(f"{ast.unparse(node)} (line {node.lineno})")
    return out


def test_the_family_files_are_found() -> None:
    assert {p.name for p in FAMILY_FILES} >= {"sam.py", "precondition.py", "bar.py", "ire.py", "vasso.py"}


@pytest.mark.parametrize("path", FAMILY_FILES, ids=lambda p: p.name)
def test_no_family_file_touches_a_private_attribute_of_another_object(path: Path) -> None:
    assert _reach_ins(path.read_text(encoding="utf-8")) == []


def test_the_walker_finds_a_reach_in() -> None:
    source = "def f(self, opt):\n    a = opt._params\n    b = self.passes._step\n    return torch._foreach_mul(a, b)"
    assert _reach_ins(source) == ["opt._params (line 2)", "self.passes._step (line 3)"]


def test_one_protocol_per_kind() -> None:
    assert set(PROTOCOLS) == set(KINDS)


@pytest.mark.parametrize(("kind", "name"), sorted(PARTS))
def test_every_part_has_the_one_constructor_and_its_kinds_methods(kind: str, name: str) -> None:
    cls = PARTS[kind, name]
    assert list(inspect.signature(cls.__init__).parameters) == ["self", "passes", "scope"]
    protocol = PROTOCOLS[kind]
    wanted = {n for n, v in vars(protocol).items() if callable(v) and (not n.startswith("_") or n == "__call__")}
    for base in protocol.__mro__[1:]:
        wanted |= {n for n, v in vars(base).items() if callable(v) and not n.startswith("_")}
    assert {n for n in wanted if not callable(getattr(cls, n, None))} == set()


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(4, 8)
        self.lora_A = nn.Parameter(0.3 * torch.randn(4, 8))
        self.lora_B = nn.Parameter(0.3 * torch.randn(3, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.inp(x)) @ (self.lora_B @ self.lora_A).T


BUILDS = [("sam", {}), ("sam", {"preconditioner": "ema_sq"}), ("sam", {"preconditioner": "fisher"}),
          ("psam", {}), ("asam", {}), ("fsam", {}), ("vasso", {}), ("nbar", {}), ("obar", {}), ("admire", {})]


def test_every_registered_part_built_on_an_optimizer_is_an_instance_of_its_kinds_protocol() -> None:
    seen = set()
    for method, hp in BUILDS:
        model = _Net()
        opt = build_optimizer(model, method, pairs=[(model.lora_B, model.lora_A)], **hp)
        for kind, part in opt.parts.items():
            assert isinstance(part, PROTOCOLS[kind]), (method, kind)
            seen.add(type(part))
    assert seen == set(PARTS.values())  # BUILDS covers every part: a new one must join it
