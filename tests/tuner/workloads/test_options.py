"""Registry and option validation: typed defaults, one-line errors naming the option, cheap resolve."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tuner.errors import UserError
from tuner.workloads import WorkloadError, get_workload, list_workloads, resolve_options

NAMES = ["hf_causal_lm", "hf_text_classification", "image_classification", "lora_text", "mnist_mlp",
         "scale_invariant", "tiny_lm", "valley2d"]


def test_registry_lists_every_workload_with_a_primary_metric() -> None:
    assert [info.name for info in list_workloads()] == NAMES
    for info in list_workloads():
        metric, goal = info.primary_metric
        assert metric.startswith("eval/") and goal in ("max", "min")
        assert info.description


def test_defaults_are_filled() -> None:
    opts = resolve_options("lora_text", {"k_shot": 16, "layers": 3})
    assert opts["k_shot"] == 16 and opts["layers"] == 3
    assert opts["rank"] == 8 and opts["alpha"] == 16.0 and opts["target_modules"] == ("query", "value")
    assert resolve_options("tiny_lm", None)["d_model"] == 128
    assert resolve_options("scale_invariant", {"alpha": 1})["alpha"] == 1.0  # ints pass as floats


@pytest.mark.parametrize(("name", "options", "option"), [
    ("lora_text", {"rank": 0}, "rank"),
    ("lora_text", {"label_noise": 1.5}, "label_noise"),
    ("lora_text", {"k_shot": 100_000}, "k_shot"),
    ("lora_text", {"target_modules": ["query", "mlp"]}, "target_modules"),
    ("lora_text", {"layers": "3"}, "layers"),
    ("lora_text", {"lr": 0.1}, "lr"),
    ("mnist_mlp", {"n_train": 4001}, "n_train"),
    ("mnist_mlp", {"dataset": "cifar"}, "dataset"),
    ("mnist_mlp", {"full_batch": 1}, "full_batch"),
    ("tiny_lm", {"n_head": 5}, "n_head"),
    ("scale_invariant", {"init_imbalance": 0.0}, "init_imbalance"),
    ("valley2d", {"w0": 1.0}, "w0"),
    ("image_classification", {"model": "wrn-16"}, "model"),
    ("image_classification", {"dataset": "imagenet"}, "dataset"),
    ("image_classification", {"cutout": -1}, "cutout"),
    ("image_classification", {"label_smoothing": 1.0}, "label_smoothing"),
    ("image_classification", {"subset": 5}, "subset"),
])
def test_bad_options_name_the_option(name: str, options: dict, option: str) -> None:
    with pytest.raises(WorkloadError) as err:
        resolve_options(name, options)
    message = str(err.value)
    assert f"'{option}'" in message and "allowed" in message and "\n" not in message
    assert isinstance(err.value, UserError)
    assert err.value.option == option  # so a spec error points at this option's line


def test_unknown_workload_lists_the_valid_names() -> None:
    with pytest.raises(WorkloadError, match="allowed: hf_causal_lm, .*, lora_text, mnist_mlp.*or an import target"):
        get_workload("resnet")


def test_resolve_options_loads_no_model_or_data() -> None:
    code = ("import sys; from tuner.workloads import resolve_options; resolve_options('lora_text', {'k_shot': 16}); "
            "resolve_options('tiny_lm', {}); heavy = {'transformers', 'peft', 'tokenizers', 'pandas', 'mlxtend'}; "
            "print(sorted(heavy & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"
