"""docs/METHODS.md, which docstrings cite, is the shared definition of the methods, kept in step with it.

The shared copy lives beside the clone (`../shared/METHODS.md` from the repository root, as in CI); where
it is not there, nothing can be compared and the test skips.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = ROOT / "docs" / "METHODS.md"
SHARED = ROOT.parent / "shared" / "METHODS.md"


def test_the_repository_has_its_copy() -> None:
    assert OURS.is_file() and OURS.read_text(encoding="utf-8").strip()


@pytest.mark.skipif(not SHARED.is_file(), reason=f"no shared copy at {SHARED}")
def test_docs_methods_md_equals_the_shared_one() -> None:
    assert OURS.read_bytes() == SHARED.read_bytes(), f"copy {SHARED} to {OURS.relative_to(ROOT)}"
