import numpy as np
import pytest
from PIL import Image

from codesign.errors import DataError
from codesign.segdata import (IGNORE, confusion, fashion_scenes, get_seg_dataset, iou_per_class,
                              load_cityscapes, miou)


def test_fashion_scenes_are_seeded_labelled_and_split():
    a = fashion_scenes(n_train=40, n_test=10, canvas=32, item=14, seed=3)
    b = fashion_scenes(n_train=40, n_test=10, canvas=32, item=14, seed=3)
    c = fashion_scenes(n_train=40, n_test=10, canvas=32, item=14, seed=4)
    assert a.x_train.shape == (40, 1, 32, 32) and a.y_test.shape == (10, 32, 32)
    assert a.classes == 11 and a.x_train.dtype == np.float32 and a.y_train.dtype == np.int64
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.y_train, b.y_train)
    assert not np.array_equal(a.y_train, c.y_train)
    assert 0 <= a.x_train.min() and a.x_train.max() <= 1
    # every scene holds an item, background dominates, several classes appear
    assert all((y > 0).any() for y in a.y_train)
    assert 0.4 < (a.y_train == 0).mean() < 0.98
    assert len(np.unique(a.y_train)) >= 6
    # item pixels are bright, background ones dim
    assert a.x_train[:, 0][a.y_train > 0].min() > 0.25
    assert a.x_train[:, 0][a.y_train == 0].max() <= 0.25 + 1e-6


def test_fashion_scenes_reject_bad_arguments():
    with pytest.raises(DataError, match="item size 40"):
        fashion_scenes(n_train=4, n_test=4, canvas=32, item=40)
    with pytest.raises(DataError, match="unknown segmentation data set 'voc'"):
        get_seg_dataset("voc")


def test_miou_counts_ignored_pixels_as_nothing():
    target = np.array([[0, 0, 1, 1], [2, 2, IGNORE, IGNORE]])
    pred = np.array([[0, 1, 1, 1], [2, 0, 2, 1]])
    conf = confusion(pred, target, 3)
    assert conf.sum() == 6
    iou = iou_per_class(conf)
    # class 0: tp 1, union 3; class 1: tp 2, union 3; class 2: tp 1, union 2
    assert np.allclose(iou, [1 / 3, 2 / 3, 1 / 2])
    assert miou(pred, target, 3) == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert miou(target.clip(0, 2), target.clip(0, 2), 3) == 1.0
    # a class absent from labels and predictions does not count
    assert miou(np.zeros(4, int), np.zeros(4, int), 5) == 1.0


def _write_cityscapes(root, split, city, stem, ids):
    img = (root / "leftImg8bit" / split / city)
    gt = (root / "gtFine" / split / city)
    img.mkdir(parents=True, exist_ok=True)
    gt.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(0).integers(0, 256, ids.shape + (3,), dtype=np.uint8)
    Image.fromarray(rgb).save(img / f"{stem}_leftImg8bit.png")
    Image.fromarray(ids.astype(np.uint8)).save(gt / f"{stem}_gtFine_labelTrainIds.png")


def test_cityscapes_loader_reads_the_official_layout(tmp_path):
    ids = np.full((8, 16), 13, np.uint8)
    ids[:4] = 0
    ids[0, 0] = IGNORE
    _write_cityscapes(tmp_path, "train", "aachen", "aachen_000000_000019", ids)
    _write_cityscapes(tmp_path, "train", "bremen", "bremen_000001_000019", ids[::-1])
    _write_cityscapes(tmp_path, "val", "lindau", "lindau_000000_000019", ids)
    d = load_cityscapes(tmp_path, size=(4, 8))
    assert d.x_train.shape == (2, 3, 4, 8) and d.y_train.shape == (2, 4, 8)
    assert d.x_test.shape == (1, 3, 4, 8) and d.classes == 19
    assert set(np.unique(d.y_train)) <= {0, 13, IGNORE}
    assert (d.y_test[0, 0] != 13).all() and (d.y_test[0, 3] == 13).all()


def test_cityscapes_loader_names_the_file_at_fault(tmp_path):
    with pytest.raises(DataError, match="leftImg8bit/train: no"):
        load_cityscapes(tmp_path)
    ids = np.zeros((4, 4), np.uint8)
    _write_cityscapes(tmp_path, "train", "aachen", "a_0", ids)
    _write_cityscapes(tmp_path, "val", "lindau", "b_0", ids)
    (tmp_path / "gtFine/val/lindau/b_0_gtFine_labelTrainIds.png").unlink()
    with pytest.raises(DataError, match="b_0_gtFine_labelTrainIds.png: file not found"):
        load_cityscapes(tmp_path, size=(4, 4))
    _write_cityscapes(tmp_path, "val", "lindau", "b_0", np.full((4, 4), 40, np.uint8))
    with pytest.raises(DataError, match="train id 40"):
        load_cityscapes(tmp_path, size=(4, 4))
