"""Upsampling (nearest and bilinear) and channel concatenation on the accelerator: TVM's resize2d
and concat matched, nearest and concat passing values unchanged (one scale in and out), bilinear
requantized, bit-exact on random shapes, and whole segmentation networks (dilated convolutions,
ASPP, upsampled logits) in one run."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from compiler.estimate import estimate
from compiler.layer_ir import Bilinear, Concat, Resize, bilinear_taps
from compiler.pipeline import compile_model
from compiler.zoo import ZOO, build
from hw.config import load_accel_config


class Branches(nn.Module):
    """A stem, branches of unaligned widths concatenated, upsampled, a 1x1 head."""

    def __init__(self, widths, factor, cin=2, dilations=None):
        super().__init__()
        self.stem = nn.Conv2d(cin, 8, 3, padding=1)
        dil = dilations or [1 + i % 3 for i in range(len(widths))]
        self.branches = nn.ModuleList(nn.Conv2d(8, w, 3, padding=d, dilation=d)
                                      for w, d in zip(widths, dil))
        self.head = nn.Conv2d(sum(widths), 5, 1)
        self.factor = factor

    def forward(self, x):
        x = F.relu(self.stem(x))
        y = torch.cat([F.relu(b(x)) for b in self.branches], 1)
        return self.head(F.interpolate(y, scale_factor=self.factor, mode="nearest"))


def _compile(model, shape, seed=0):
    cal = np.random.default_rng(seed).standard_normal((6, *shape)).astype(np.float32)
    torch.manual_seed(seed)
    return compile_model(model.eval(), torch.from_numpy(cal[:1]), load_accel_config("default"),
                         None, cal), cal


def _check(net, cal, engine):
    est = estimate(net.program)
    with net.runner(engine) as acc, net.runner("reference") as ref:
        for x in cal[:2]:
            np.testing.assert_array_equal(acc(x[None]), ref(x[None]))
            for layer in net.layers:
                np.testing.assert_array_equal(acc.int_outputs[layer.name],
                                              ref.int_outputs[layer.name], err_msg=layer.name)
            for run in acc.layer_runs:
                assert run.counters == est[run.name], run.name


@pytest.mark.parametrize("widths,factor,shape", [
    ((3, 5), (2, 2), (2, 6, 7)),
    ((4, 8, 2), (3, 1), (1, 5, 4)),
    ((16, 16), (1, 2), (3, 4, 6)),
    ((6, 1, 9, 4), (2, 3), (2, 3, 5)),
])
def test_concat_and_upsampling_are_bit_exact_in_one_run(widths, factor, shape):
    torch.manual_seed(sum(widths))
    net, cal = _compile(Branches(widths, factor, shape[0]), shape)
    kinds = {type(layer) for layer in net.layers}
    assert {Concat, Resize} <= kinds and all(p.where == "tta" for p in net.placement)
    concat = next(layer for layer in net.layers if isinstance(layer, Concat))
    # the branches requantize to the concatenation's one scale
    for layer in net.layers:
        if layer.name.startswith("branches"):
            assert float(layer.out.scale[0]) == concat.in_scale
    assert len(net.program.segments) == 1, net.placement_report()
    _check(net, cal, "golden")


@pytest.mark.rtl
def test_segmentation_networks_run_whole_on_the_rtl():
    for name in ("deeplab", "dilated_vgg"):
        entry = next(e for e in ZOO if e.name == name)
        net, cal = _compile(build(entry), entry.input_shape)
        assert all(p.where == "tta" for p in net.placement), net.placement_report()
        assert len(net.program.segments) == 1, net.placement_report()
        assert any(getattr(layer, "dilation", (1, 1)) != (1, 1) for layer in net.layers)
        _check(net, cal, "rtl")


class Upsampled(nn.Module):
    def __init__(self, cin, c, mode, size, corners=None):
        super().__init__()
        self.conv, self.head = nn.Conv2d(cin, c, 3, padding=1), nn.Conv2d(c, 3, 1)
        self.mode, self.size, self.corners = mode, size, corners

    def forward(self, x):
        y = F.interpolate(F.relu(self.conv(x)), size=self.size, mode=self.mode,
                          align_corners=self.corners)
        return self.head(y)


def test_bilinear_taps_are_pytorchs_weights():
    for s in (1, 2, 3, 4, 5):
        x = torch.arange(7, dtype=torch.float64).reshape(1, 1, 1, 7) ** 2
        y = F.interpolate(x, size=(1, 7 * s), mode="bilinear", align_corners=False)[0, 0, 0]
        for i in range(7):
            for r, taps in enumerate(bilinear_taps(s)):
                want = sum(w * float(x[0, 0, 0, min(6, max(0, i + a))]) for a, w in taps) / (2 * s)
                assert float(y[s * i + r]) == pytest.approx(want)


@pytest.mark.parametrize("c,size,shape", [(4, (10, 12), (2, 5, 6)), (8, (12, 8), (2, 4, 4)),
                                          (40, (6, 20), (2, 3, 5)), (130, (6, 6), (1, 3, 3))])
def test_bilinear_upsampling_is_bit_exact_in_one_run(c, size, shape):
    torch.manual_seed(c)
    net, cal = _compile(Upsampled(shape[0], c, "bilinear", size), shape)
    assert any(isinstance(layer, Bilinear) for layer in net.layers), net.placement_report()
    assert len(net.program.segments) == 1 and all(p.where == "tta" for p in net.placement)
    _check(net, cal, "golden")
    torch.manual_seed(c)
    model = Upsampled(shape[0], c, "bilinear", size).eval()
    fake_quant = net.fake_quant()
    try:
        for x in cal[:2]:
            y_fq = fake_quant(x[None])
            with torch.no_grad():
                y = model(torch.from_numpy(x[None])).numpy()
            assert y_fq.shape == y.shape == (1, 3, *size)
            assert np.linalg.norm(y_fq - y) / np.linalg.norm(y) < 0.05  # quantization only
    finally:
        fake_quant.close()


def test_other_resizes_stay_on_the_host():
    for mode, size, corners in (("bilinear", (16, 16), True), ("nearest", (12, 12), None),
                                ("bicubic", (16, 16), False)):
        net, _ = _compile(Upsampled(1, 4, mode, size, corners), (1, 8, 8))
        host = [p for p in net.placement if p.where != "tta"]
        assert host, net.placement_report()
        assert not any(isinstance(layer, (Resize, Bilinear)) for layer in net.layers)
