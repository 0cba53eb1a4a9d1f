"""Semantic segmentation data: images as float32 NCHW in [0, 1], labels as int64 [N, H, W] with
IGNORE (255) on pixels that count for nothing, and the mean intersection over union.

- fashion-scenes: a SYNTHETIC task generated offline from Fashion-MNIST: several items pasted
  on a dark canvas with a faint random background; each item's pixels (above a threshold) are
  labelled with its class + 1, the rest 0 (background): 11 classes. Seeded, so the same
  arguments always give the same scenes; train scenes use only training items, test scenes only
  test items.
- cityscapes: the official layout (`leftImg8bit/<split>/<city>/*_leftImg8bit.png`,
  `gtFine/<split>/<city>/*_gtFine_labelTrainIds.png`) under a directory the user gives, resized
  to the network's input (area for images, nearest for labels); 19 classes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codesign.data import load_fashion_mnist
from codesign.errors import DataError

IGNORE = 255
FASHION_CLASSES = ("background", "t-shirt", "trouser", "pullover", "dress", "coat", "sandal",
                   "shirt", "sneaker", "bag", "ankle-boot")
CITYSCAPES_CLASSES = ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
                      "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car",
                      "truck", "bus", "train", "motorcycle", "bicycle")


@dataclass(frozen=True, eq=False)
class SegDataset:
    name: str
    x_train: np.ndarray  # float32 [N, C, H, W] in [0, 1]
    y_train: np.ndarray  # int64 [N, H, W]: class per pixel, IGNORE where none counts
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]

    @property
    def classes(self) -> int:
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])


def _shrink(items: np.ndarray, size: int) -> np.ndarray:
    """[N, 28, 28] -> [N, size, size] by area averaging (size divides 28) or nearest."""
    n, h, _ = items.shape
    if h % size == 0:
        f = h // size
        return items.reshape(n, size, f, size, f).mean(axis=(2, 4))
    idx = (np.arange(size) * h) // size
    return items[:, idx][:, :, idx]


def _scenes(items: np.ndarray, labels: np.ndarray, n: int, canvas: int, per_scene: tuple,
            threshold: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    size = items.shape[1]
    x = rng.uniform(0.0, 0.15, (n, 1, canvas, canvas)).astype(np.float32)
    y = np.zeros((n, canvas, canvas), np.int64)
    for i in range(n):
        for _ in range(rng.integers(per_scene[0], per_scene[1] + 1)):
            k = rng.integers(len(items))
            top, left = rng.integers(0, canvas - size + 1, 2)
            patch = items[k]
            mask = patch > threshold  # later items lie on top of earlier ones
            win = (slice(top, top + size), slice(left, left + size))
            x[i, 0][win][mask] = patch[mask]
            y[i][win][mask] = labels[k] + 1
    return x, y


def fashion_scenes(n_train: int = 2000, n_test: int = 500, canvas: int = 32, item: int = 14,
                   per_scene: tuple[int, int] = (1, 3), threshold: float = 0.25, seed: int = 0,
                   directory: str | Path | None = None) -> SegDataset:
    """Synthetic scenes of `per_scene` Fashion-MNIST items (shrunk to `item` pixels) on a
    `canvas` x `canvas` image; documented as synthetic in the module docstring."""
    if not 1 <= item <= canvas:
        raise DataError(f"fashion-scenes: item size {item} must lie in 1..canvas ({canvas})")
    if not 1 <= per_scene[0] <= per_scene[1]:
        raise DataError(f"fashion-scenes: per_scene {per_scene} must be (lo, hi), 1 <= lo <= hi")
    src = load_fashion_mnist(directory)
    rng = np.random.default_rng(seed)
    parts = []
    for xs, ys, n in ((src.x_train, src.y_train, n_train), (src.x_test, src.y_test, n_test)):
        pick = rng.choice(len(xs), min(len(xs), max(64, 4 * n)), replace=False)
        parts += _scenes(_shrink(xs[pick, 0], item), ys[pick], n, canvas, per_scene,
                         threshold, rng)
    return SegDataset("fashion-scenes", *parts, FASHION_CLASSES)


def _read_png(path: Path, size: tuple[int, int], labels: bool) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            if labels:
                if im.mode not in ("L", "P", "I", "I;16"):
                    raise DataError(f"{path}: a labelTrainIds image must have one channel "
                                    f"(mode {im.mode})")
                im = im.convert("L").resize(size[::-1], Image.NEAREST)
                return np.asarray(im, np.int64)
            im = im.convert("RGB").resize(size[::-1], Image.BOX)
            return np.asarray(im, np.float32).transpose(2, 0, 1) / 255.0
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"{path}: not a readable PNG image ({exc})") from None


def _cityscapes_split(root: Path, split: str, size, limit):
    images = sorted((root / "leftImg8bit" / split).glob("*/*_leftImg8bit.png"))
    if not images:
        raise DataError(f"{root / 'leftImg8bit' / split}: no <city>/*_leftImg8bit.png images "
                        f"(expected the official Cityscapes layout)")
    images = images[:limit] if limit else images
    xs, ys = [], []
    for img in images:
        stem = img.name[:-len("_leftImg8bit.png")]
        gt = root / "gtFine" / split / img.parent.name / f"{stem}_gtFine_labelTrainIds.png"
        xs.append(_read_png(img, size, labels=False))
        y = _read_png(gt, size, labels=True)
        bad = (y >= len(CITYSCAPES_CLASSES)) & (y != IGNORE)
        if bad.any():
            raise DataError(f"{gt}: train id {int(y[bad][0])} is neither a class "
                            f"(0..{len(CITYSCAPES_CLASSES) - 1}) nor {IGNORE} (ignore)")
        ys.append(y)
    return np.stack(xs), np.stack(ys)


def load_cityscapes(directory: str | Path | None = None, size: tuple[int, int] = (64, 128),
                    limit: int | None = None) -> SegDataset:
    """Cityscapes `train` for training and `val` as the held-out split, resized to `size`."""
    if directory is None and not os.environ.get("CODESIGN_CITYSCAPES"):
        raise DataError("cityscapes: set CODESIGN_CITYSCAPES (or data.directory) to the directory "
                        "holding leftImg8bit/ and gtFine/")
    root = Path(directory or os.environ["CODESIGN_CITYSCAPES"])
    return SegDataset("cityscapes", *_cityscapes_split(root, "train", size, limit),
                      *_cityscapes_split(root, "val", size, limit), CITYSCAPES_CLASSES)


def confusion(pred: np.ndarray, target: np.ndarray, classes: int) -> np.ndarray:
    """[classes, classes] counts (row: true class, column: predicted) over the counted pixels."""
    pred, target = np.asarray(pred).ravel(), np.asarray(target).ravel()
    if pred.shape != target.shape:
        raise ValueError(f"predictions ({pred.size} pixels) and labels ({target.size}) differ")
    keep = target != IGNORE
    return np.bincount(target[keep] * classes + pred[keep],
                       minlength=classes * classes).reshape(classes, classes)


def iou_per_class(conf: np.ndarray) -> np.ndarray:
    """Intersection over union per class; NaN for a class absent from labels and predictions."""
    tp = np.diag(conf).astype(np.float64)
    union = conf.sum(0) + conf.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def miou(pred: np.ndarray, target: np.ndarray, classes: int) -> float:
    """Mean IoU over the classes present in labels or predictions (the Cityscapes convention)."""
    return float(np.nanmean(iou_per_class(confusion(pred, target, classes))))


SEG_LOADERS = {"fashion-scenes": fashion_scenes, "cityscapes": load_cityscapes}


def get_seg_dataset(name: str, directory: str | Path | None = None, **kw) -> SegDataset:
    if name not in SEG_LOADERS:
        raise DataError(f"unknown segmentation data set {name!r}; allowed: "
                        f"{', '.join(SEG_LOADERS)}")
    return SEG_LOADERS[name](directory=directory, **kw)
