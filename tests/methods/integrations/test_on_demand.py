"""The training-stack integrations are imported only on demand (issue 13): no module of `methods` outside
`methods/integrations/` imports them or their stacks, so `import methods` works without Lightning and
never pays for transformers."""

from __future__ import annotations

import ast
from pathlib import Path

METHODS = Path(__file__).resolve().parents[3] / "methods"
STACKS = ("methods.integrations.transformers", "methods.integrations.lightning", "lightning",
          "pytorch_lightning", "transformers", "peft", "accelerate")


def _imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(("methods." if node.level else "") + node.module)
    return names


def test_no_module_outside_integrations_imports_a_training_stack():
    core = [p for p in METHODS.rglob("*.py") if "integrations" not in p.relative_to(METHODS).parts]
    assert len(core) > 10
    for path in core:
        bad = {name for name in _imported(path) for stack in STACKS if name == stack or name.startswith(stack + ".")}
        assert not bad, f"{path.relative_to(METHODS.parent)} imports {sorted(bad)}"
