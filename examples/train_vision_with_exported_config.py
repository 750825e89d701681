"""Train on the images a vision experiment tuned on, with the config `python -m tuner export NAME -o best.yaml` wrote.

    python -m tuner export sam-vision -o best.yaml
    python examples/train_vision_with_exported_config.py best.yaml --spec search_spaces/sam_vision.yaml
    python examples/train_vision_with_exported_config.py best.yaml --spec results/sam-cifar/spec.yaml \\
        --set root=/data/cifar --set model=wrn-28-10 --steps 78000

The data come from the spec's `image_classification` workload (`--set KEY=VALUE` changes an option, VALUE as
YAML): the same reader, training split, crop, flip and model the trials had, built with the spec's seed.
The loop is plain PyTorch around the exported winner: `build_optimizer(model, **load_config(path))`, the
workload's closure (the forward pass and the spec's loss, no backward), `opt.step(closure)`, then a step of
the trial's lr schedule (`provenance.training.lr_schedule`, e.g. cosine: torch's `LambdaLR` from
`tuner.trial.lr_scheduler`, stretched over this run's steps). It trains `--steps` steps (default: the tuned
trial's length, else 600) and prints the validation accuracy last.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from methods import build_optimizer, load_config  # noqa: E402
from tuner.spec import load_spec  # noqa: E402
from tuner.trial.lr_schedule import LrSchedule  # noqa: E402
from tuner.trial.lr_scheduler import lr_scheduler  # noqa: E402
from tuner.workloads import create_workload  # noqa: E402


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="exported YAML or JSON config")
    parser.add_argument("--spec", required=True, help="the experiment's spec (its image_classification options)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="a workload option, VALUE as YAML (repeatable)")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)

    spec = load_spec(args.spec)                              # validated: the data under root are checked
    if spec.workload.name != "image_classification":
        parser.error(f"{args.spec}: the workload is {spec.workload.name}, not image_classification")
    options = {**spec.workload.options, **{k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.sets)}}
    workload = create_workload("image_classification", options, seed=spec.seed, device=args.device)

    config = load_config(args.config)                        # {"method": ..., **hyperparameters}
    provenance = yaml.safe_load(Path(args.config).read_text(encoding="utf-8")).get("provenance") or {}
    trained = (provenance.get("training") or {}).get("lr_schedule") or {}   # the trial's lr schedule and horizon
    steps = args.steps or trained.get("horizon") or config.get("total_steps") or 600
    if config.get("total_steps"):
        config["total_steps"] = steps                        # the schedules' horizon: this run's length
    opt = build_optimizer(workload.model, **config)          # 1. the exported winner
    schedule = LrSchedule.from_dict({k: v for k, v in trained.items() if k != "horizon"})
    scheduler = None if schedule.is_constant else lr_scheduler(opt, schedule, steps)   # over this run's steps
    print(f"training with {opt.method}: {opt.hparams}; lr schedule {schedule.name}, warmup {schedule.warmup}")

    for step in range(steps):
        batch = workload.next_batch()                        # gathered and augmented on the device, as in the trials
        loss = opt.step(workload.closure(batch))             # 2. the closure: forward and the spec's loss, no backward
        if scheduler is not None:
            scheduler.step()                                 # 3. the next step's lr
        if step % 100 == 0 or step == steps - 1:
            print(f"step {step:5d}  loss {float(loss):.4f}  grad evals {opt.counts['grad_evals']}")

    accuracy = workload.evaluate()["eval/accuracy"]
    print(f"validation accuracy {accuracy:.4f}")
    return accuracy


if __name__ == "__main__":
    main()
