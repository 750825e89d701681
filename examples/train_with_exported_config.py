"""Train a small PyTorch model with a config exported by `python -m tuner export NAME -o best.yaml`.

    python examples/train_with_exported_config.py best.yaml [--steps 300]

Plain PyTorch: the only sharptune lines are `build_optimizer(model, **load_config(path))`, the closure
(forward only: the method takes every gradient it needs) and `opt.step(closure)`. The task is a
synthetic 3-class problem (no download) so the script runs anywhere in seconds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from methods import build_optimizer, load_config  # noqa: E402


def make_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Three noisy Gaussian blobs in 8 dimensions (same centres for every split, samples by seed)."""
    centers = torch.randn(3, 8, generator=torch.Generator().manual_seed(1234)) * 2.0
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    x = centers[y] + torch.randn(n, 8, generator=g) * 1.5
    return x, y


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="exported YAML or JSON config")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    x_train, y_train = make_data(2048, seed=args.seed)
    x_test, y_test = make_data(1024, seed=args.seed + 1)
    model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 3))
    loss_fn = nn.CrossEntropyLoss()

    config = load_config(args.config)                      # {"method": ..., **hyperparameters}
    opt = build_optimizer(model, **config)                 # 1. the exported winner
    print(f"training with {opt.method}: {opt.hparams}")

    for step in range(args.steps):
        idx = torch.randint(0, len(x_train), (args.batch_size,))
        xb, yb = x_train[idx], y_train[idx]

        def closure(xb: torch.Tensor = xb, yb: torch.Tensor = yb) -> tuple[torch.Tensor, torch.Tensor]:
            logits = model(xb)                             # 2. forward only, no backward
            return loss_fn(logits, yb), logits

        loss = opt.step(closure)                           # 3. every pass the method needs
        if step % 100 == 0 or step == args.steps - 1:
            print(f"step {step:4d}  loss {float(loss):.4f}  grad evals {opt.counts['grad_evals']}")

    with torch.no_grad():
        accuracy = (model(x_test).argmax(dim=1) == y_test).float().mean().item()
    print(f"test accuracy {accuracy:.3f}")
    return accuracy


if __name__ == "__main__":
    main()
