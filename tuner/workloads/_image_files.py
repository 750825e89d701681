"""Readers for image datasets on disk, in the layouts users already have: no download, no torchvision.

Each layout is a registry entry: the files it expects (checked cheaply when the spec is, so a wrong
`root` is one line naming the file, exit 2, before Ray starts) and a reader that returns the whole
dataset as uint8 N×C×H×W tensors, to be moved to the training device once.

- `fashion_mnist`: the four idx files (`train-images-idx3-ubyte.gz`, ...), gzipped or not; the default
  root is where Debian's `dataset-fashion-mnist` package installs them;
- `cifar10`, `cifar100`: torchvision's extracted folders (`cifar-10-batches-py/`, `cifar-100-python/`),
  Python pickles read with `encoding="latin1"` (`data`: uint8 N×3072 in R, G, B planes). A pickle can
  run code when read: point `root` at your own copy only, as with torchvision;
- `folder`: one subfolder per class of PNG/JPEG/BMP images of one size (`root/<class>/*.png`), or
  `root/train/<class>/` beside `root/test/<class>/` (or `val/`) for a test split. Read with Pillow.
"""

from __future__ import annotations

import gzip
import pickle
import struct
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError  # Pillow: a dependency of matplotlib, ours
from torch import Tensor

from tuner.workloads._options import WorkloadError

NAME = "image_classification"
FASHION_MNIST_ROOT = "/usr/share/datasets/fashion-mnist"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
FASHION_CLASSES = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot")


@dataclass(frozen=True, eq=False)
class ImageData:
    """A dataset in memory: uint8 images N×C×H×W, int64 labels; `test_*` None where there is no test split."""

    train_x: Tensor
    train_y: Tensor
    test_x: Tensor | None
    test_y: Tensor | None
    classes: tuple[str, ...]

    @cached_property
    def channel_stats(self) -> tuple[Tensor, Tensor]:
        """Per-channel mean and standard deviation of the training images in [0, 1] (float64, in chunks:
        CIFAR's 50 000 images are never held as floats at once); computed once per dataset and process."""
        chunk = 4096
        total = torch.zeros(self.train_x.shape[1], dtype=torch.float64)
        squares = torch.zeros_like(total)
        for start in range(0, len(self.train_x), chunk):
            part = self.train_x[start:start + chunk].to(torch.float64) / 255.0
            total += part.sum(dim=(0, 2, 3))
            squares += part.square().sum(dim=(0, 2, 3))
        count = self.train_x.numel() / self.train_x.shape[1]
        mean = total / count
        return mean, (squares / count - mean.square()).clamp_min(1e-12).sqrt()


def _fail(root: Path, what: str) -> WorkloadError:
    return WorkloadError(f"{NAME}: option 'root' = '{root}': {what}")


# ------------------------------------------------------------------ fashion_mnist (idx files)
IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
IDX_MAGIC = {3: 0x0803, 1: 0x0801}  # unsigned bytes, 3 dimensions (images) or 1 (labels)


def _idx_path(root: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem):
        if (root / name).is_file():
            return root / name
    raise _fail(root, f"no {root / (stem + '.gz')} (the fashion_mnist layout: the four idx files "
                      f"{', '.join(s + '.gz' for pair in IDX_FILES.values() for s in pair)}; Debian: "
                      "apt-get install dataset-fashion-mnist)")


def _idx_open(path: Path) -> bytes:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        return f.read()


def _idx_header(root: Path, path: Path, raw: bytes, dims: int) -> tuple[int, ...]:
    if len(raw) < 4 + 4 * dims or struct.unpack(">I", raw[:4])[0] != IDX_MAGIC[dims]:
        raise _fail(root, f"{path} is not an idx file of {dims}-dimensional unsigned bytes")
    return struct.unpack(f">{dims}I", raw[4:4 + 4 * dims])


def _idx_check(root: Path) -> None:
    for images, labels in IDX_FILES.values():
        for stem, dims in ((images, 3), (labels, 1)):
            path = _idx_path(root, stem)
            opener = gzip.open if path.suffix == ".gz" else open
            try:
                with opener(path, "rb") as f:
                    head = f.read(4 + 4 * dims)
            except OSError as exc:
                raise _fail(root, f"{path} cannot be read ({exc})") from None
            _idx_header(root, path, head, dims)


def _idx_array(root: Path, stem: str, dims: int) -> np.ndarray:
    path = _idx_path(root, stem)
    raw = _idx_open(path)
    shape = _idx_header(root, path, raw, dims)
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims)
    if body.size != int(np.prod(shape)):
        raise _fail(root, f"{path} holds {body.size} bytes, its header says {shape}")
    return body.reshape(shape)


def _idx_read(root: Path) -> ImageData:
    split = {}
    for name, (images, labels) in IDX_FILES.items():
        x, y = _idx_array(root, images, 3), _idx_array(root, labels, 1)
        if len(x) != len(y):
            raise _fail(root, f"{name}: {len(x)} images but {len(y)} labels")
        split[name] = (torch.from_numpy(x.copy()).unsqueeze(1), torch.from_numpy(y.astype(np.int64)))
    return ImageData(*split["train"], *split["test"], FASHION_CLASSES)


# ------------------------------------------------------------------ cifar10 / cifar100 (pickles)
@dataclass(frozen=True)
class CifarLayout:
    folder: str
    train: tuple[str, ...]
    test: str
    label_key: str
    classes: int


CIFAR = {"cifar10": CifarLayout("cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)),
                                "test_batch", "labels", 10),
         "cifar100": CifarLayout("cifar-100-python", ("train",), "test", "fine_labels", 100)}


def _cifar_folder(root: Path, layout: CifarLayout) -> Path:
    """`root` itself or its `cifar-10-batches-py/` (`cifar-100-python/`) subfolder."""
    return root / layout.folder if (root / layout.folder).is_dir() else root


def _cifar_check(root: Path, layout: CifarLayout) -> None:
    folder = _cifar_folder(root, layout)
    for name in (*layout.train, layout.test):
        if not (folder / name).is_file():
            raise _fail(root, f"no {folder / name} (the layout torchvision extracts: {layout.folder}/ with "
                              f"{', '.join((*layout.train, layout.test))})")


def _cifar_batch(root: Path, path: Path, layout: CifarLayout) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            batch = pickle.load(f, encoding="latin1")
        data = np.asarray(batch["data"], dtype=np.uint8)
        labels = np.asarray(batch[layout.label_key], dtype=np.int64)
    except (OSError, pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as exc:
        raise _fail(root, f"{path} is not a CIFAR pickle with 'data' and {layout.label_key!r} "
                          f"({type(exc).__name__}: {exc})") from None
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise _fail(root, f"{path}: 'data' must be N x 3072 uint8 with one label each, got {data.shape}")
    if labels.size and not (0 <= labels.min() and labels.max() < layout.classes):
        raise _fail(root, f"{path}: labels outside 0..{layout.classes - 1}")
    return data.reshape(-1, 3, 32, 32), labels


def _cifar_read(root: Path, layout: CifarLayout) -> ImageData:
    folder = _cifar_folder(root, layout)
    parts = [_cifar_batch(root, folder / name, layout) for name in layout.train]
    test_x, test_y = _cifar_batch(root, folder / layout.test, layout)
    x = torch.from_numpy(np.concatenate([p[0] for p in parts]))
    y = torch.from_numpy(np.concatenate([p[1] for p in parts]))
    classes = tuple(str(i) for i in range(layout.classes))
    return ImageData(x, y, torch.from_numpy(test_x), torch.from_numpy(test_y), classes)


# ------------------------------------------------------------------ folder (one subfolder per class)
def _class_dirs(folder: Path) -> list[Path]:
    return sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _folder_splits(root: Path) -> tuple[Path, Path | None]:
    """(training folder, test folder or None): `root/train` with `root/test` or `root/val`, else `root`."""
    if (root / "train").is_dir():
        test = next((root / n for n in ("test", "val") if (root / n).is_dir()), None)
        return root / "train", test
    return root, None


def _folder_check(root: Path) -> None:
    if not root.is_dir():
        raise _fail(root, "no such folder (the folder layout: root/<class>/*.png, one subfolder per class)")
    train, _ = _folder_splits(root)
    classes = _class_dirs(train)
    if len(classes) < 2:
        raise _fail(root, f"{train} must hold one subfolder per class, at least two (found {len(classes)})")
    empty = next((d for d in classes if not _images(d)), None)
    if empty is not None:
        raise _fail(root, f"{empty} holds no image ({', '.join(IMAGE_SUFFIXES)})")


def _folder_split(root: Path, folder: Path, classes: tuple[str, ...]) -> tuple[Tensor, Tensor]:
    files = [(p, i) for i, c in enumerate(classes) if (folder / c).is_dir() for p in _images(folder / c)]
    arrays, labels, first = [], [], None
    for path, label in files:
        try:
            with Image.open(path) as img:
                gray = img.mode in ("1", "L", "I;16", "I")
                arr = np.asarray(img.convert("L" if gray else "RGB"), dtype=np.uint8)
        except (OSError, UnidentifiedImageError) as exc:
            raise _fail(root, f"{path} cannot be read as an image ({exc})") from None
        arrays.append(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1))
        first = first or (path, arrays[-1].shape)
        if arrays[-1].shape[1:] != first[1][1:]:
            raise _fail(root, f"{path} is {arrays[-1].shape[2]}x{arrays[-1].shape[1]}, {first[0]} is "
                              f"{first[1][2]}x{first[1][1]}: every image must have one size")
        labels.append(label)
    channels = max(a.shape[0] for a in arrays)
    x = np.stack([np.repeat(a, channels // a.shape[0], axis=0) for a in arrays])  # grey beside RGB: as RGB
    return torch.from_numpy(x), torch.tensor(labels, dtype=torch.int64)


def _folder_read(root: Path) -> ImageData:
    train, test = _folder_splits(root)
    classes = tuple(d.name for d in _class_dirs(train))
    x, y = _folder_split(root, train, classes)
    test_x, test_y = _folder_split(root, test, classes) if test is not None else (None, None)
    return ImageData(x, y, test_x, test_y, classes)


# ------------------------------------------------------------------ the registry
@dataclass(frozen=True)
class Layout:
    check: Callable[[Path], None]  # cheap: names exist, headers are right
    read: Callable[[Path], ImageData]
    default_root: str | None = None
    has_test: Callable[[Path], bool] = lambda root: True


LAYOUTS = {
    "fashion_mnist": Layout(_idx_check, _idx_read, FASHION_MNIST_ROOT),
    **{name: Layout(lambda r, lay=lay: _cifar_check(r, lay), lambda r, lay=lay: _cifar_read(r, lay))
       for name, lay in CIFAR.items()},
    "folder": Layout(_folder_check, _folder_read, has_test=lambda root: _folder_splits(root)[1] is not None),
}


def root_of(dataset: str, root: str | None) -> Path:
    """The folder to read: `root`, or the dataset's default; WorkloadError when there is neither."""
    chosen = root or LAYOUTS[dataset].default_root
    if chosen is None:
        raise WorkloadError(f"{NAME}: option 'root' is required for dataset {dataset!r} (the folder holding it)")
    return Path(chosen)


def check(dataset: str, root: str | None, *, test: bool = False) -> None:
    """The files `dataset` needs are under `root` (cheap); WorkloadError naming the option and the file.

    `test`: the test split is needed too (only the folder layout may lack one)."""
    path = root_of(dataset, root)
    LAYOUTS[dataset].check(path)
    if test and not LAYOUTS[dataset].has_test(path):
        raise _fail(path, "has no test split (root/train/<class>/ beside root/test/<class>/ or root/val/<class>/); "
                          "use validation: held_out")


@lru_cache(maxsize=2)
def read(dataset: str, root: str | None) -> ImageData:
    """The whole dataset (read once per process and kept: trials of one worker share it)."""
    path = root_of(dataset, root)
    LAYOUTS[dataset].check(path)
    return LAYOUTS[dataset].read(path)
