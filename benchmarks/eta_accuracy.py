"""How good is `tuner run`'s ETA? Run a spec, timestamp every progress line, compare with the real end.

    python benchmarks/eta_accuracy.py search_spaces/bar.yaml [--set KEY=VALUE ...]

Every progress block says `ETA search X[, then confirmation (N runs) Y]` (or `ETA confirm X` during the
confirmation phase). The ETA is for the trials of the two phases: it ends when the last trial does
(the block that counts every trial done). For each block this prints the predicted end against that
real end, and the worst relative error of the remaining time once a quarter of the run's wall time
has passed (the target is 30 %); then the end-of-run work after it (winners, summary, Ray shutdown),
which no ETA covers. The run's own output goes to `--log FILE`.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ETA = re.compile(r"\| ETA (search|confirm) (\S+?)(?:, then confirmation \(\d+ runs\) (\S+))?$")
ALL_DONE = re.compile(r"\] (search|confirm): (\d+)/(\d+) done .*, 0 running \|")
UNITS = {"s": 1.0, "m": 60.0}


def seconds(text: str) -> float | None:
    """`45s`, `2m35s`, `12m`, `1h05m` back to seconds; None for `?`."""
    if text == "?":
        return None
    match = re.fullmatch(r"(\d+)h(\d+)m", text)
    if match:
        return int(match[1]) * 3600.0 + int(match[2]) * 60.0
    match = re.fullmatch(r"(\d+)m(\d+)s", text)
    if match:
        return int(match[1]) * 60.0 + int(match[2])
    return float(text[:-1]) * UNITS[text[-1]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--log", default="eta_run.log")
    args = parser.parse_args()
    cmd = [sys.executable, "-m", "tuner", "run", args.spec, *[a for s in args.overrides for a in ("--set", s)]]
    start = time.monotonic()
    points: list[tuple[float, float]] = []  # (elapsed, predicted remaining seconds)
    trials_end: float | None = None
    with open(args.log, "w", encoding="utf-8") as log, subprocess.Popen(
            cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            now = time.monotonic() - start
            log.write(f"{now:8.1f} {line}")
            done = ALL_DONE.search(line)
            if done and done[2] == done[3] and not (done[1] == "search" and ", then confirmation" in line):
                trials_end = now  # the last trial of the last phase has ended
            match = ETA.search(line.rstrip())
            if match:
                phase_left = seconds(match[2])
                confirm_left = seconds(match[3]) if match[3] else 0.0
                if phase_left is not None and confirm_left is not None:
                    points.append((now, phase_left + confirm_left))
    wall = time.monotonic() - start
    total = trials_end if trials_end is not None else wall
    print(f"exit {proc.returncode}; wall {wall:.0f}s; last trial ended at {total:.0f}s; {len(points)} progress "
          f"blocks with an ETA (log: {args.log})")
    print(f"{'at s':>8} {'predicted end s':>16} {'remaining s':>12} {'true remaining s':>17} {'error':>7}")
    worst = 0.0
    for at, left in points:
        true_left = total - at
        error = (left - true_left) / true_left if true_left > 0 else 0.0
        late = at >= total / 4
        if late and at < total:
            worst = max(worst, abs(error))
        note = "" if late else "  (first quarter)"
        print(f"{at:8.0f} {at + left:16.0f} {left:12.0f} {true_left:17.0f} {error:+7.0%}{note}")
    print(f"worst |error| after the first quarter: {worst:.0%} (target <= 30%); then {wall - total:.0f}s of "
          f"end-of-run work (winners, summary, Ray shutdown)")
    return int(proc.returncode or 0)


if __name__ == "__main__":
    raise SystemExit(main())
