"""Model code nobody here wrote: torchvision's classification networks, loaded without its
compiled extension.

torchvision's wheel on PyPI (0.28.0, the release for torch 2.13) carries a CUDA build of its `_C`
extension, and `import torchvision` fails beside the CPU torch ("operator torchvision::nms does
not exist": its package __init__ registers meta kernels for those operators). The
classification models are pure Python: the package is entered as a namespace without running
its __init__, so `torchvision.models` and the `torchvision.ops` layers they use load from the
wheel's own files, unchanged.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import types
from dataclasses import dataclass
from typing import Callable

from compiler.errors import CompileError


def torchvision_models():
    """The `torchvision.models` module (classification models usable; nothing of `_C`)."""
    loaded = sys.modules.get("torchvision")
    if loaded is None or not hasattr(loaded, "models"):
        spec = importlib.util.find_spec("torchvision")
        if spec is None or not spec.submodule_search_locations:
            raise CompileError("torchvision is not installed (make installs torchvision==0.28.0 "
                               "without its dependencies)")
        if loaded is None:
            package = types.ModuleType("torchvision")
            package.__path__ = list(spec.submodule_search_locations)
            package.__spec__ = importlib.machinery.ModuleSpec("torchvision", None,
                                                              is_package=True)
            sys.modules["torchvision"] = package
    return importlib.import_module("torchvision.models")


@dataclass(frozen=True)
class ThirdPartyEntry:
    name: str
    factory: Callable  # () -> nn.Module with 10 classes, random weights


def _tv(builder: str, **kw) -> Callable:
    def make():
        return getattr(torchvision_models(), builder)(num_classes=10, **kw)
    return make


TORCHVISION = [
    ThirdPartyEntry("mobilenet_v2_0.35", _tv("mobilenet_v2", width_mult=0.35)),
    ThirdPartyEntry("mobilenet_v2_0.5", _tv("mobilenet_v2", width_mult=0.5)),
    ThirdPartyEntry("mnasnet0_5", _tv("mnasnet0_5")),
    ThirdPartyEntry("shufflenet_v2_x0_5", _tv("shufflenet_v2_x0_5")),
    ThirdPartyEntry("squeezenet1_1", _tv("squeezenet1_1")),
    ThirdPartyEntry("mobilenet_v3_small", _tv("mobilenet_v3_small")),
    ThirdPartyEntry("resnet18", _tv("resnet18")),
    ThirdPartyEntry("regnet_x_400mf", _tv("regnet_x_400mf")),
    ThirdPartyEntry("efficientnet_b0", _tv("efficientnet_b0")),
]


def mixed_spec(model) -> dict:
    """The mixed-precision version of a model nobody here wrote: ternary weights and
    activations inside, 8-bit in the layer that reads the input and the one that writes the
    output (as the MLPerf Tiny models' mixed versions)."""
    import torch

    weighted = [n for n, m in model.named_modules()
                if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    eight = {"weights": 8, "activations": 8}
    return {"default": {"weights": 2, "activations": 2},
            "layers": {weighted[0]: eight, weighted[-1]: eight}}
