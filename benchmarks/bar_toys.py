"""The BAR paper's toys at the paper's settings (Li, Zhang, He, NeurIPS 2024, App. A.4; Figs. 1 and 2b).

    python benchmarks/bar_toys.py [--steps 100000] [--seeds 4] [--mu0 0.1] [--plot docs/bar_toys.png]

NOP: E‖xyᵀ − (A + αN)‖², A = diag(0.5, 0, 0) (3×3), N = diag(1, 0.8, 0.5)·U, U standard Gaussian; SAM ρ = 0.1.
OP:  E(xᵀy − (0.5 + αn))², n standard Gaussian; SAM ρ = 0.2.
Both: η = 1e-4, T = 10⁵ steps, one fresh noise draw per step, x0 = (0.2, −0.1, 0.3), y0 = −3 x0.

SGD, SAM, nBAR and oBAR (Algorithms 2 and 3, SGD base, α_t = μ0 constant: the paper gives no μ0 for its
toys) run side by side on every noise level α and seed at once (numpy arrays of shape seeds × levels × 3),
written from the paper, not from `methods`; `--check` also runs `methods.build_optimizer("nbar"/"obar")` on
one level and seed for 2000 steps and prints how far it is from the numpy loop. The script prints |D| =
|‖x‖² − ‖y‖²| (what the paper's figures plot) at a few points, the paper's three claims with the numbers that
decide them, and draws the curves (mean over seeds) as the paper's Figs. 1 and 2b do.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# This folder holds platform.py, which would shadow the standard library's `platform` (torch imports it) while
# the folder is first on sys.path, as it is for `python benchmarks/x.py`: put the repository there instead.
sys.path[:] = [str(REPO), *(p for p in sys.path if Path(p or ".").resolve() != REPO / "benchmarks")]

import numpy as np

LEVELS = (0.1, 0.5, 1.0, 2.0)  # α: the noise scale (lower SNR to the right)
LR, RHO = {"nop": 1e-4, "op": 1e-4}, {"nop": 0.1, "op": 0.2}
X0 = np.array([0.2, -0.1, 0.3])
A_NOP, N_SCALE = np.diag([0.5, 0.0, 0.0]), np.array([1.0, 0.8, 0.5])[:, None]
METHODS = ("sgd", "sam", "nbar", "obar")


def _target(problem: str, alpha: np.ndarray, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """One noisy target per (seed, level): A + αN (3×3) or 0.5 + αn (scalar)."""
    if problem == "nop":
        return A_NOP + alpha[..., None, None] * (N_SCALE * rng.standard_normal((*shape, 3, 3)))
    return 0.5 + alpha * rng.standard_normal(shape)


def _grads(problem: str, x: np.ndarray, y: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """∇ of ‖xyᵀ − M‖² (2Ry, 2Rᵀx) or of (xᵀy − m)² (2ry, 2rx), batched over the leading axes."""
    if problem == "nop":
        r = x[..., :, None] * y[..., None, :] - target
        return 2 * np.einsum("...ij,...j->...i", r, y), 2 * np.einsum("...ij,...i->...j", r, x)
    r = (x * y).sum(-1, keepdims=True) - target[..., None]
    return 2 * r * y, 2 * r * x


def _norm(t: np.ndarray) -> np.ndarray:
    return np.sqrt((t * t).sum(-1, keepdims=True))


def run(problem: str, method: str, steps: int, seeds: int, mu0: float, every: int) -> np.ndarray:
    """|‖x‖² − ‖y‖²| every `every` steps, shape (points, seeds, levels); the same noise for every method."""
    rng = np.random.default_rng(0)
    shape = (seeds, len(LEVELS))
    alpha = np.broadcast_to(np.array(LEVELS), shape)
    x, y = np.broadcast_to(X0, (*shape, 3)).copy(), np.broadcast_to(-3 * X0, (*shape, 3)).copy()
    lr, rho, rate = LR[problem], RHO[problem], mu0 * LR[problem]  # α_t η_t, constant
    out = []
    for t in range(steps):
        if t % every == 0:
            out.append(np.abs((x * x).sum(-1) - (y * y).sum(-1)))
        target = _target(problem, alpha, rng, shape)
        gx, gy = _grads(problem, x, y, target)
        if method == "sam":  # ε = ρ g / ‖g‖ over (x, y), the gradient at θ + ε on the same draw
            scale = rho / (np.sqrt(_norm(gx) ** 2 + _norm(gy) ** 2) + 1e-12)
            gx, gy = _grads(problem, x + scale * gx, y + scale * gy, target)
        elif method in ("nbar", "obar"):  # Algorithms 2 / 3, then the SGD step with the same gradient
            grow_x = _norm(gx) >= _norm(gy) if method == "nbar" else ~(_norm(x) >= _norm(y))
            sign = np.where(grow_x, 1.0, -1.0)
            x, y = x * (1 + sign * rate), y * (1 - sign * rate)
        x, y = x - lr * gx, y - lr * gy
    out.append(np.abs((x * x).sum(-1) - (y * y).sum(-1)))
    return np.stack(out)


def check_against_methods(problem: str, method: str, mu0: float, steps: int = 2000) -> float:
    """Relative gap between `methods.build_optimizer(method)` and the numpy loop on level 1.0, seed 0."""
    import torch

    from methods import build_optimizer

    rng = np.random.default_rng(0)
    level = np.array([[1.0]])
    x = torch.nn.Parameter(torch.tensor(X0, dtype=torch.float64))
    y = torch.nn.Parameter(torch.tensor(-3 * X0, dtype=torch.float64))
    opt = build_optimizer([x, y], method, pairs=[(x, y)], base="sgd", lr=LR[problem], momentum=0.0, mu0=mu0)
    nx, ny = X0.copy(), -3 * X0
    for _ in range(steps):
        target = _target(problem, level, rng, (1, 1))[0, 0]
        tt = torch.tensor(target)
        if problem == "nop":
            opt.step(lambda tt=tt: ((torch.outer(x, y) - tt).square().sum(), None))
        else:
            opt.step(lambda tt=tt: ((x @ y - tt) ** 2, None))
        gx, gy = _grads(problem, nx, ny, target)
        norm = np.linalg.norm
        grow = norm(gx) >= norm(gy) if method == "nbar" else not norm(nx) >= norm(ny)
        s = (1 if grow else -1) * mu0 * LR[problem]
        nx, ny = nx * (1 + s) - LR[problem] * gx, ny * (1 - s) - LR[problem] * gy
    got = np.concatenate([x.detach().numpy(), y.detach().numpy()])
    ref = np.concatenate([nx, ny])
    return float(np.linalg.norm(got - ref) / np.linalg.norm(ref))


def _halving(curve: np.ndarray, start: float, every: int) -> str:
    below = np.flatnonzero(curve <= start / 2)
    return str(int(below[0]) * every) if below.size else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--mu0", type=float, default=0.1, help="α_t of nBAR/oBAR (constant); the paper gives none")
    parser.add_argument("--plot", type=Path, default=None, help="write the figure here (PNG)")
    parser.add_argument("--check", action="store_true", help="also compare methods' nbar/obar with the loop")
    args = parser.parse_args()
    every = max(1, args.steps // 100)
    curves = {(p, m): run(p, m, args.steps, args.seeds, args.mu0, every) for p in ("nop", "op") for m in METHODS}
    start = float(abs((X0 ** 2).sum() - (9 * X0 ** 2).sum()))
    print(f"steps {args.steps}, seeds {args.seeds}, mu0 {args.mu0}; |D_0| = {start:.3f}; "
          f"final |D| (mean over seeds) per noise level {LEVELS}:")
    final = {k: v[-1].mean(0) for k, v in curves.items()}
    for (p, m), f in final.items():
        print(f"  {p:3s} {m:4s} " + "  ".join(f"{v:.4f}" for v in f))
    print("claims:")
    for p in ("nop", "op"):
        sgd, sam = final[p, "sgd"], final[p, "sam"]
        print(f"  {p}: SAM ends below SGD at every level: {bool((sam < sgd).all())} "
              f"(SAM/SGD final |D|: {', '.join(f'{a / b:.2f}' for a, b in zip(sam, sgd, strict=True))})")
        drop = start - sam
        print(f"  {p}: SAM's drop |D_0| − |D_T| grows with α (lower SNR): {bool(np.all(np.diff(drop) > 0))} "
              f"(drops {', '.join(f'{d:.3f}' for d in drop)})")
        print(f"  {p}: SGD keeps |D|: max change {float(np.abs(sgd - start).max()):.4f}")
    print(f"  steps until the mean |D| is at most |D_0|/2 (levels {LEVELS}; - never):")
    for p, m in (("nop", "sam"), ("nop", "nbar"), ("nop", "obar"), ("op", "sam"), ("op", "obar"), ("op", "nbar")):
        halves = [_halving(c, start, every) for c in curves[p, m].mean(1).T]
        print(f"    {p:3s} {m:4s} " + "  ".join(f"{h:>7}" for h in halves))
    if args.check:
        for p, m in (("nop", "nbar"), ("op", "obar")):
            print(f"  methods.build_optimizer({m!r}) vs the loop on {p}, 2000 steps: "
                  f"{check_against_methods(p, m, args.mu0):.1e} relative")
    if args.plot:
        _plot(curves, every, args, start)


def _plot(curves: dict, every: int, args: argparse.Namespace, start: float) -> None:
    """Two rows (NOP, OP) as the paper's Fig. 1 (SGD vs SAM per noise level) and Fig. 2b (SAM vs the balancer)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), sharex=True)
    colors = plt.cm.viridis(np.linspace(0.1, 0.85, len(LEVELS)))
    steps = np.arange(next(iter(curves.values())).shape[0]) * every
    steps[-1] = args.steps
    titles = {"nop": "NOP E‖xyᵀ−(A+αN)‖², ρ=0.1", "op": "OP E(xᵀy−(0.5+αn))², ρ=0.2"}
    for row, (p, bar) in enumerate((("nop", "nbar"), ("op", "obar"))):
        for col, (left, right) in enumerate((("sgd", "sam"), ("sam", bar))):
            ax = axes[row, col]
            for m, style in ((left, ":" if left == "sgd" else "-"), (right, "-" if right == "sam" else "--")):
                for c, level, curve in zip(colors, LEVELS, curves[p, m].mean(1).T, strict=True):
                    ax.plot(steps, curve, style, color=c, lw=1.3, label=f"{m} α={level}")
            ax.set_title(f"{titles[p]}: {left} vs {right}", fontsize=9)
            ax.set_ylabel("|‖x‖² − ‖y‖²|")
            ax.set_ylim(0, start * 1.1)
            ax.legend(fontsize=6, ncol=2)
    for ax in axes[1]:
        ax.set_xlabel("iteration")
    fig.suptitle(f"BAR paper toys (App. A.4): η=1e-4, x0=(0.2,−0.1,0.3), y0=−3x0, SGD base; α_t of nBAR/oBAR = "
                 f"{args.mu0} (constant); mean of {args.seeds} seeds (benchmarks/bar_toys.py)", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    args.plot.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.plot, dpi=100)
    print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
