"""Shared fixtures for the workload tests: one CPU thread, offline Hugging Face."""

from __future__ import annotations

import os

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(1)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
