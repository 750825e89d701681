"""What every figure module shares: the no-data signal, the finite-rows filter, the goal in words."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


class NoData(Exception):
    """A section has nothing to show; the message says why (it goes into the report)."""


def finite(df: pd.DataFrame, key: str) -> pd.DataFrame:
    """The rows of `df` with a finite `key` (none when the column is missing)."""
    if key not in df:
        return df.iloc[0:0]
    return df[np.isfinite(df[key].astype(float))]


def better(goal: str) -> str:
    return "higher is better" if goal == "maximize" else "lower is better"
