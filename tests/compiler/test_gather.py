"""Channels picked and reordered on the accelerator: ShuffleNet's channel shuffle (reshape,
swap, reshape), a split's parts and channel slices are `gather` layers, 1x1 convolutions with
a 0/1 selection matrix, bit-exact and in the same run as their neighbours."""

import pytest
import torch

from compiler.pipeline import compile_model
from tests.compiler.netcheck import every_layer_exact, tracks_float
from hw.config import load_accel_config

pytestmark = [pytest.mark.rtl, pytest.mark.slow]


class _ShuffleBlock(torch.nn.Module):
    """ShuffleNetV2's stride-1 unit: split, one half through a branch, concatenate,
    shuffle; then a channel slice into the head."""

    def __init__(self, c: int, groups: int):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, c, 3, padding=1)
        self.branch = torch.nn.Conv2d(c // 2, c // 2, 1)
        self.groups = groups
        self.head = torch.nn.Linear(c // 2, 10)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        a, b = x.chunk(2, dim=1)
        y = torch.cat((a, torch.relu(self.branch(b))), 1)
        n, c, h, w = y.shape
        y = y.view(n, self.groups, c // self.groups, h, w).transpose(1, 2).contiguous()
        y = y.view(n, c, h, w)
        return self.head(y[:, 1:1 + c // 2].mean([2, 3]))


@pytest.mark.parametrize("config,c,groups", [("default", 16, 2), ("default", 200, 4),
                                             ("tiny", 12, 3)])
def test_shuffle_split_and_slice_run_on_the_accelerator(config, c, groups):
    torch.manual_seed(c)
    model = _ShuffleBlock(c, groups).eval()
    cal = torch.randn(8, 3, 5, 5)
    net = compile_model(model, cal[:1], load_accel_config(config), None, cal.numpy())
    assert all(p.where == "tta" for p in net.placement), net.placement_report()
    assert sum(layer.name.startswith("gather") for layer in net.layers) == 4
    every_layer_exact(net, "rtl", cal[:2].numpy())
    tracks_float(net, model, cal[:1])
