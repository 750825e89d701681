"""A trial's whole training step never waits on the device: batch, closure, step and finiteness (issue 25).

`tests/methods/test_host_free.py` checks `opt.step` on a fixed batch; on a GPU the batch path and the
model's forward synced too (a blocking copy of each batch, transformers' `padding_mask.all()`). Here
every built-in workload is built on the `meta` device, which holds shapes and no data: reading a value
back (`.item()`, `bool(t)`, `.tolist()`, an output whose shape depends on the data) raises there, so
any host read anywhere in the step, ours or a library's, fails the test where it happens. Copies from
the host are recorded by a dispatch mode: a copy to the device that is not `non_blocking` is one the
host waits for on CUDA, and fails the test too.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from vision_files import write_cifar

from methods import build_optimizer, list_methods
from tuner.trial.lr_schedule import LrSchedule
from tuner.trial.trainer import CHECK_EVERY, Trainer
from tuner.workloads import create_workload, list_workloads
from tuner.workloads.lora_text import model_dir

META = torch.device("meta")
WORDS = "the film was plot actors really quite story good great bad awful".split()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-layer BERT and a one-layer GPT-2 checkpoint with the packaged tokenizer, text files, CIFAR pickles."""
    import pandas as pd
    from transformers import AutoModel, AutoTokenizer, GPT2Config, GPT2LMHeadModel

    root = tmp_path_factory.mktemp("host_free")
    tok = AutoTokenizer.from_pretrained(model_dir())
    AutoModel.from_pretrained(model_dir(), num_hidden_layers=1).save_pretrained(root / "bert")
    tok.save_pretrained(root / "bert")
    GPT2LMHeadModel(GPT2Config(vocab_size=tok.vocab_size, n_positions=64, n_embd=32, n_layer=1,
                               n_head=2)).save_pretrained(root / "gpt")
    tok.save_pretrained(root / "gpt")
    write_cifar(root / "cifar")
    rng = random.Random(0)
    rows = [{"text": " ".join(rng.sample(WORDS, rng.randrange(2, 9))), "label": i % 2} for i in range(64)]
    pd.DataFrame(rows).to_csv(root / "train.csv", index=False)
    (root / "train.txt").write_text("\n".join(r["text"] for r in rows) + "\n")
    return root


def _options(name: str, root: Path) -> dict[str, Any]:
    """Small options for each built-in workload; a new workload must be added here (the test says so)."""
    return {
        # lengths vary within a batch: the batch is padded, so the attention mask is passed
        "lora_text": {"batch_size": 8, "max_seq_len": 32, "layers": 1},
        "hf_text_classification": {"model": str(root / "bert"), "train": str(root / "train.csv"),
                                   "text_column": "text", "label_column": "label", "max_seq_len": 16,
                                   "batch_size": 8, "lora": {"rank": 2, "target_modules": ["query", "value"]}},
        "hf_causal_lm": {"model": str(root / "gpt"), "train": str(root / "train.txt"), "seq_len": 8,
                         "batch_size": 4, "lora": {"rank": 2, "target_modules": ["c_attn"]}},
        # every augmentation: the crop, the flip and Cutout are gathers and masks on the device
        "image_classification": {"dataset": "cifar10", "root": str(root / "cifar"), "model": "resnet20",
                                 "batch_size": 8, "cutout": 8, "loss": "smooth_ce", "label_smoothing": 0.1},
        "tiny_lm": {},
        "mnist_mlp": {},
        "scale_invariant": {},
        "valley2d": {},
    }[name]


class _HostCopies(TorchDispatchMode):
    """Records every copy from the host to another device that the host would wait for."""

    def __init__(self) -> None:
        super().__init__()
        self.blocking: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        if func in (torch.ops.aten._to_copy.default, torch.ops.aten.copy_.default):
            source = args[1] if func is torch.ops.aten.copy_.default else args[0]
            target = args[0].device if func is torch.ops.aten.copy_.default else kwargs.get("device")
            blocking = not (kwargs.get("non_blocking") or (len(args) > 2 and args[2]))
            if isinstance(source, torch.Tensor) and source.device.type == "cpu" and target is not None \
                    and torch.device(target).type != "cpu" and blocking:
                self.blocking.append(f"{func} of {tuple(source.shape)}")
        return func(*args, **kwargs)


def _hparams(info: Any, workload: str) -> dict[str, Any]:
    hp: dict[str, Any] = {"lr": 0.01, "total_steps": 100}
    if info.preset.ire:  # a mask estimate in every step, from Fisher curvature where outputs are logits
        hp.update(warmup=0, ire_interval=1, curvature="grad_sq" if workload == "valley2d" else "fisher")
    return {k: v for k, v in hp.items() if k in info.hyperparameters}


@pytest.mark.slow
@pytest.mark.parametrize("workload", sorted(w.name for w in list_workloads()))
def test_a_trial_step_never_reads_the_device_back(workload: str, files: Path) -> None:
    wl = create_workload(workload, _options(workload, files), seed=0, device=META)
    assert next(wl.model.parameters()).device == META
    presets = [i for i in list_methods() if not i.plugin and (wl.pairs or not i.needs_pairs)
               and not (workload == "valley2d" and i.preset.perturbation == "functional")]  # no logits there
    for info in presets:
        opt = build_optimizer(wl.model, info.name, pairs=wl.pairs or None, **_hparams(info, workload))
        trainer = Trainer(wl, opt, eval_every=1000, max_steps=100,  # a moving lr: the schedule's step is host-only
                          lr_schedule=LrSchedule("cosine", warmup=0.02), horizon=100)
        trainer._non_finite(trainer._one_step(), read=False)  # state allocated outside the counted steps
        with _HostCopies() as copies:
            for _ in range(3):
                assert trainer.step % CHECK_EVERY != 0
                trainer._non_finite(trainer._one_step(), read=False)  # raises on meta at any host read
        assert not copies.blocking, (info.name, copies.blocking)
        assert opt.counts["grad_evals"] >= 4


def test_the_copy_detector_sees_a_blocking_copy_and_meta_sees_a_read() -> None:
    """The two detectors above catch what they claim to: otherwise the test proves nothing."""
    with _HostCopies() as copies:
        torch.ones(3).to(META)
        torch.ones(3).to(META, non_blocking=True)
    assert len(copies.blocking) == 1
    with pytest.raises(RuntimeError, match="meta"):
        bool(torch.ones(3, device=META).all())


@pytest.mark.slow
def test_the_4d_padding_mask_gives_the_logits_of_the_2d_one() -> None:
    """`encoder_mask` hands the model the mask transformers would build: SDPA and eager, padded rows."""
    from tuner.workloads._hf_text import _Classifier, build_classifier, encoder_mask

    for implementation in ("sdpa", "eager"):
        model = build_classifier(model_dir(), 1, 2, None, "mean", seed=0)
        encoder = model.peft.base_model
        encoder.config._attn_implementation = implementation
        model.eval()
        ids = torch.randint(5, 1000, (3, 7))
        mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3, [1] * 2 + [0] * 5])
        with torch.no_grad():
            ours = model(ids, mask)
            theirs = _plain_forward(model, ids, mask)
            unpadded = model(ids[:1], None)
            unpadded_ref = _plain_forward(model, ids[:1], mask[:1])
        assert encoder_mask(encoder, mask).dim() == 4
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(unpadded, unpadded_ref, rtol=1e-5, atol=1e-6)
        assert isinstance(model, _Classifier)


def _plain_forward(model: Any, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The classifier's forward as it was before: the 2D mask handed to transformers."""
    seq = model._inner()
    hidden = getattr(seq, seq.base_model_prefix)(input_ids=ids, attention_mask=mask).last_hidden_state
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return seq.classifier(seq.dropout((hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)))
