"""Each part owns a namespaced slice of `state_dict`, and a flat state dict saved before the slices still resumes.

`legacy_checkpoints.py` wrote `data/state_dicts_flat.pt` with the code of 7e58c13 (one flat dict): the model and
optimizer after a few steps, and the parameters after a few more. Loading each into today's optimizer and taking
the same steps must land on the same parameters and pass counts: an old checkpoint resumes exactly.
"""

from __future__ import annotations

import copy

import pytest
import torch
from legacy_checkpoints import AFTER, CASES, FILE, WARM, Net, batches, steps

from methods import build_optimizer

SAVED = torch.load(FILE, weights_only=False)


def _built(method: str, hp: dict) -> tuple[Net, object]:
    torch.manual_seed(0)
    model = Net()
    return model, build_optimizer(model, method, lr=0.05, pairs=[(model.lora_B, model.lora_A)], **hp)


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_flat_state_dict_saved_before_the_slices_resumes_exactly(case: str) -> None:
    method, hp = CASES[case]
    saved = SAVED[case]
    assert "parts" not in saved["optimizer"]  # the old, flat format
    model, opt = _built(method, hp)
    model.load_state_dict(saved["model"])
    opt.load_state_dict(saved["optimizer"])
    steps(model, opt, batches(AFTER, 3), seed=4)
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, saved["after"][name], rtol=0, atol=1e-6, msg=f"{case}: {name}")
    assert opt.counts == saved["counts"]


@pytest.mark.parametrize("case", ["sam_fisher", "sgd_ire", "nbar", "sam_ema_sq"])
def test_each_part_owns_its_slice_and_a_round_trip_is_exact(case: str) -> None:
    method, hp = CASES[case]
    model, opt = _built(method, hp)
    steps(model, opt, batches(WARM, 1), seed=2)
    state = copy.deepcopy(opt.state_dict())  # as torch.save would: base state tensors are live
    assert set(state["parts"]) == set(opt.parts)  # one slice per part, under its kind
    assert not {"precond_steps", "peak_lr", "lr_warm", "last_lr"} & set(state)  # no part writes at the top level
    twin_model, twin = _built(method, hp)
    twin_model.load_state_dict(model.state_dict())
    twin.load_state_dict(state)
    steps(model, opt, batches(AFTER, 3), seed=4)
    steps(twin_model, twin, batches(AFTER, 3), seed=4)
    for (name, a), b in zip(model.state_dict().items(), twin_model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
