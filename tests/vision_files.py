"""Small image datasets written in the layouts `image_classification` reads: CIFAR pickles, idx files, PNG folders.

Each image of class c is a noisy version of class c's own pattern (a bright stripe at a class-specific
row), so a model can learn the classes and a reader that mixes up planes, rows or labels is caught.
"""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_MISSING = "Debian's dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)"


def fashion_mnist_installed() -> bool:
    return (FASHION_MNIST / "train-images-idx3-ubyte.gz").is_file()


def images(n: int, classes: int, channels: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 n × channels × size × size images and their labels (0..classes-1, every class present)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    rng.shuffle(labels)
    x = rng.integers(0, 60, (n, channels, size, size), dtype=np.uint8)
    for i, c in enumerate(labels):
        x[i, c % channels] += 40  # the class's tint
        x[i, :, (3 * c) % size, :] = 250  # and its stripe
    return x, labels.astype(np.int64)


def write_cifar(root: Path, *, classes: int = 10, per_batch: int = 40, seed: int = 0) -> Path:
    """torchvision's extracted layout: `cifar-10-batches-py/` (`cifar-100-python/` for 100 classes)."""
    if classes == 10:
        folder, names, key = root / "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], "labels"
    else:
        folder, names, key = root / "cifar-100-python", ["train"], "fine_labels"
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate([*names, "test_batch" if classes == 10 else "test"]):
        x, y = images(per_batch, classes, 3, 32, seed + i)
        with open(folder / name, "wb") as f:  # as CIFAR's own files: N × 3072 in R, G, B planes; latin1 keys
            pickle.dump({"data": x.reshape(len(x), -1), key: y.tolist(), "batch_label": name}, f, protocol=2)
    return root


def write_idx(root: Path, *, train: int = 200, test: int = 100, seed: int = 0) -> Path:
    """The four Fashion-MNIST idx files, gzipped, 28 × 28 greyscale."""
    root.mkdir(parents=True, exist_ok=True)
    for (images_name, labels_name), n, s in [(("train-images-idx3-ubyte", "train-labels-idx1-ubyte"), train, seed),
                                             (("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"), test, seed + 1)]:
        x, y = images(n, 10, 1, 28, s)
        with gzip.open(root / f"{images_name}.gz", "wb") as f:
            f.write(struct.pack(">IIII", 0x0803, n, 28, 28) + x.tobytes())
        with gzip.open(root / f"{labels_name}.gz", "wb") as f:
            f.write(struct.pack(">II", 0x0801, n) + y.astype(np.uint8).tobytes())
    return root


def write_folder(root: Path, classes: tuple[str, ...] = ("cat", "dog", "fox"), *, per_class: int = 6,
                 size: int = 16, split: bool = True, seed: int = 0) -> Path:
    """`root/train/<class>/*.png` and `root/test/<class>/*.png` (or `root/<class>/` without `split`)."""
    x, y = images(per_class * len(classes) * 2, len(classes), 3, size, seed)
    for i, (img, label) in enumerate(zip(x, y, strict=True)):
        part = ("train" if i % 2 == 0 else "test") if split else ""
        folder = root / part / classes[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img.transpose(1, 2, 0)).save(folder / f"{i:03d}.png")
    return root


def data_sets(spec: Path, folder: Path) -> list[str] | None:
    """`--set` items under which a shipped spec finds its images here: a CIFAR spec's `root` at pickles written
    under `folder`. None where the spec needs Debian's Fashion-MNIST and it is not installed (the caller skips)."""
    workload = yaml.safe_load(spec.read_text())["workload"]
    options = workload.get("options") or {}
    if workload["name"] != "image_classification":
        return []
    dataset = options.get("dataset", "fashion_mnist")
    if dataset.startswith("cifar"):
        write_cifar(folder, classes=100 if dataset == "cifar100" else 10)
        return [f"workload.options.root={folder}"]
    if dataset == "fashion_mnist" and not options.get("root") and not fashion_mnist_installed():
        return None
    return []
