"""Block-wise segmentation search: configs checked field by field, the exact search over block
tables, networks of any block choice whole on the accelerator, and a tiny search end to end
(resumed without redoing a phase)."""

import itertools
import json

import numpy as np
import pytest
import torch
import yaml

from codesign.blockwise import (_enumerate, _pareto, _spread, load_segmentation,
                                parse_segmentation, run)
from codesign.errors import ConfigError
from codesign.segnet import BlockChoice, SegNet, default_arch
from compiler.pipeline import compile_model
from hw.config import load_accel_config

TINY = {"name": "seg-tiny", "task": "segmentation", "dataset": "fashion-scenes",
        "data": {"n_train": 160, "n_test": 24}, "teacher": {"epochs": 1},
        "teacher_qat": {"epochs": 1},
        "library": {"ops": ["ir", "fused"], "expand": [2], "bits": ["8/8", "2/2"]},
        "distill": {"epochs": 1, "images": 96}, "finetune": {"epochs": 1}, "picks": 4,
        "eval_images": 12, "rtl_images": 1}


@pytest.mark.parametrize("field,value,match", [
    ("task", "classification", "field 'task': must be 'segmentation'"),
    ("dataset", "voc", "unknown segmentation data set 'voc'"),
    ("library", {"bits": ["3/8"]}, "bits '3/8'"),
    ("library", {"ops": ["conv"]}, "library: field 'ops': must be a list drawn from"),
    ("picks", 1, "picks"),
    ("colour", 1, "colour"),
])
def test_config_errors_name_the_field(field, value, match):
    with pytest.raises(ConfigError, match=match):
        parse_segmentation({**TINY, field: value}, "seg.yaml")


def test_shipped_config_parses():
    exp = load_segmentation("configs/experiments/segmentation.yaml")
    assert exp.picks >= 10 and (2, 2) in exp.library.bits and (8, 8) in exp.library.bits


def test_block_keys_round_trip_and_the_library_holds_the_teacher():
    exp = parse_segmentation(TINY, "seg.yaml")
    arch = default_arch((1, 32, 32), 11)
    for pos in arch.positions:
        found = exp.library.choices(pos.teacher)
        assert pos.teacher in found and len(set(found)) == len(found)
        for c in found:
            assert BlockChoice.from_key(c.key) == c
    with pytest.raises(ConfigError, match="not a block key"):
        BlockChoice.from_key("ir-e4")


def test_exact_search_equals_brute_force():
    rng = np.random.default_rng(3)
    allowed = [["a", "b", "c"], ["d", "e"], ["f", "g", "h"]]
    blocks = {str(k): {c: float(rng.random()) for c in ks} for k, ks in enumerate(allowed)}
    hw = {str(k): {c: {"cycles": int(rng.integers(10, 99)), "energy_j": 1.0,
                       "size_bits": int(rng.integers(1, 9))} for c in ks}
          for k, ks in enumerate(allowed)}
    combos, loss, costs = _enumerate(allowed, blocks, hw)
    assert len(combos) == 18
    for i, combo in enumerate(itertools.product(*allowed)):
        assert combos[i] == combo
        assert loss[i] == pytest.approx(sum(blocks[str(k)][c] for k, c in enumerate(combo)))
        assert costs["cycles"][i] == sum(hw[str(k)][c]["cycles"] for k, c in enumerate(combo))
    front = set(_pareto(loss, costs["cycles"]).tolist())
    for i in range(len(combos)):
        dominated = any(loss[j] <= loss[i] and costs["cycles"][j] <= costs["cycles"][i]
                        and (loss[j] < loss[i] or costs["cycles"][j] < costs["cycles"][i])
                        for j in range(len(combos)))
        assert (i in front) == (not dominated)
    order = np.array([5, 2, 9, 1])
    assert _spread(order, 2) == [5, 1] and _spread(order, 9) == [5, 2, 9, 1]


@pytest.mark.slow  # 7-10 s each (measured)
@pytest.mark.parametrize("shape,classes", [((1, 16, 16), 5), ((3, 16, 32), 19)],
                         ids=["scenes", "cityscapes-shaped"])
def test_any_block_choice_runs_whole_on_the_accelerator(shape, classes):
    """A network of random block choices: one accelerator run, nothing on the host,
    bit-exact on the golden model."""
    arch = default_arch(shape, classes)
    rng = np.random.default_rng(classes)
    for _ in range(2):
        choices = tuple(BlockChoice(str(rng.choice(["ir", "fused"])), int(rng.choice([1, 2, 4])),
                                    int(rng.choice([3, 5])), int(rng.choice([1, 2])),
                                    *[(8, 8), (2, 8), (1, 8), (2, 2)][rng.integers(4)])
                        for _ in arch.positions)
        torch.manual_seed(0)
        model = SegNet(arch, choices)
        cal = torch.randn(8, *shape)
        with model.float_view() as f:
            net = compile_model(f, cal[:1], load_accel_config("default"), model.quant_spec(),
                                cal.numpy())
        assert all(p.where == "tta" for p in net.placement), net.placement_report()
        assert len(net.program.segments) == 1, net.placement_report()
        with net.runner("golden") as g, net.runner("reference") as r:
            x = cal[:1].numpy()
            np.testing.assert_array_equal(g(x), r(x))
            assert g(x).shape == (1, classes, *shape[1:])


@pytest.mark.rtl
@pytest.mark.slow
def test_tiny_search_end_to_end_and_resumed(tmp_path):
    (tmp_path / "seg.yaml").write_text(yaml.safe_dump(TINY))
    exp = load_segmentation(tmp_path / "seg.yaml")
    lines = []
    summary = run(exp, tmp_path / "run", lines.append)
    d = tmp_path / "run"
    blocks = json.loads((d / "blocks.json").read_text())
    hw = json.loads((d / "hw_table.json").read_text())
    arch = default_arch((1, 32, 32), 11)
    for k, pos in enumerate(arch.positions):
        keys = {c.key for c in exp.library.choices(pos.teacher)}
        assert set(blocks[str(k)]) == keys == set(hw[str(k)])
        assert all(np.isfinite(v) and v >= 0 for v in blocks[str(k)].values())
    # ternary weights and activations cost fewer bits than int8, same shape
    assert hw["1"]["ir-e2-k3-d1-w2a2"]["size_bits"] < hw["1"]["ir-e2-k3-d1-w8a8"]["size_bits"]
    results = json.loads((d / "finetuned.json").read_text())
    assert "teacher" in results and len(results) >= 4
    for r in results.values():
        assert r["runs"] == 1 and r["host_ops"] == [] and 0 <= r["miou"] <= 1
    assert all(r["bit_exact"] for r in summary["rtl"].values())
    assert set(summary["times"]) >= {"teacher_s", "blocks_s", "hw_table_s", "search_s",
                                     "finetune_s"}
    assert (d / "report.md").is_file() and (d / "fronts.png").is_file()
    page = (d / "report.html").read_text()
    assert "Plotly" in page and "mIoU vs" in page and results["teacher"]["blocks"][0] in page
    # resumed: nothing is trained or measured again
    times = json.loads((d / "times.json").read_text())
    del results[next(n for n in results if n != "teacher")]
    (d / "finetuned.json").write_text(json.dumps(results))
    lines.clear()
    run(exp, d, lines.append)
    again = json.loads((d / "times.json").read_text())
    for phase in ("teacher_s", "blocks_s"):
        assert again[phase] == times[phase]
    assert sum(1 for m in lines if m.startswith("  ") and "mIoU" in m) == 1  # only the lost one
