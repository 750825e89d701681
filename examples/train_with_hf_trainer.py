"""Train with the Hugging Face Trainer and a config exported by `python -m tuner export NAME -o best.yaml`.

    python examples/train_with_hf_trainer.py best.yaml [--steps 40] [--bf16] [--lora]

The only sharptune line is `SharpTrainer(..., sharp_config=path)`: a `transformers.Trainer` whose
training step runs the method's passes itself. The model is a tiny randomly initialised BERT on a
synthetic token task (no download), optionally with peft LoRA adapters (the balancers find their pairs).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch
from transformers import BertConfig, BertForSequenceClassification, TrainingArguments

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from methods.integrations.transformers import SharpTrainer  # noqa: E402


class TokenTask(torch.utils.data.Dataset):
    """Sequences of 12 tokens; the label says whether token 7 occurs."""

    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(8, 64, (n, 12), generator=g)
        has = torch.rand(n, generator=g) < 0.5
        self.ids[has, torch.randint(0, 12, (int(has.sum()),), generator=g)] = 7
        self.labels = (self.ids == 7).any(dim=1).long()

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "attention_mask": torch.ones(12, dtype=torch.long), "labels": self.labels[i]}


def main(argv: list[str] | None = None) -> SharpTrainer:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="exported YAML or JSON config")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (the optimizer's precision follows)")
    parser.add_argument("--lora", action="store_true", help="train peft LoRA adapters only")
    parser.add_argument("--output-dir", default=None)
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(
        vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
        max_position_embeddings=16, num_labels=2))
    if args.lora:
        from peft import LoraConfig, get_peft_model
        model = get_peft_model(model, LoraConfig(r=4, target_modules=["query", "value"], task_type="SEQ_CLS"))

    training = TrainingArguments(output_dir=args.output_dir or tempfile.mkdtemp(), max_steps=args.steps,
                                 per_device_train_batch_size=32, logging_steps=max(1, args.steps // 5), report_to=[],
                                 use_cpu=True, save_strategy="no", lr_scheduler_type="constant", bf16=args.bf16,
                                 disable_tqdm=True)
    trainer = SharpTrainer(model=model, args=training, train_dataset=TokenTask(512, seed=0),
                           sharp_config=args.config)                     # the exported winner
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    print(f"{trainer.sharp.method}: {trainer.sharp.counts['grad_evals']} gradient evaluations, "
          f"logged losses {losses}")
    return trainer


if __name__ == "__main__":
    main()
