"""The comparison dashboard: which method wins, how robustly, at what cost.

    from dashboards.report import build_report     # HTML + PNGs, logged to the parent run
    from tuner.results.winners import tag_winners     # parent-run summary and best-run tags only (no plots)

Submodules are imported on demand so that the runner can tag winners without loading matplotlib.
"""

from __future__ import annotations

from typing import Any

__all__ = ["build_report", "tag_winners"]


def __getattr__(name: str) -> Any:
    if name == "build_report":
        from dashboards.report import build_report

        return build_report
    if name == "tag_winners":
        from tuner.results.winners import tag_winners

        return tag_winners
    raise AttributeError(f"module 'dashboards' has no attribute {name!r}")
