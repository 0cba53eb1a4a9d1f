"""Block-wise quantization-aware NAS for segmentation (DNA / DONNA, scaled up to QA-NAS in
arXiv 2401.12350), every phase resumable from its run directory:

1. teacher: the DeepLabV3-style network (`codesign.segnet`) trained in float, then QAT at int8;
2. blocks: every candidate of every position trained once by block-wise distillation (input:
   the teacher's previous block output; target: the teacher's block output; per-channel
   noise-to-signal loss) -> `blocks.json` (+ weights, data only);
3. hardware table: each candidate block compiled alone for the accelerator, its cycles, energy
   (estimator) and size -> `hw_table.json`;
4. search over block combinations on the tables: exact Pareto fronts by enumeration (the costs
   and the predictor add up over blocks) of predicted quality against cycles and size, INT8 only
   and mixed precision; picks spread along both fronts;
5. the picks (and the teacher) finetuned end to end (QAFT), compiled, measured in mIoU with the
   integer semantics, cycles and energy; sampled images on the RTL; Kendall tau of the
   predictor against finetuned mIoU.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from codesign.errors import ConfigError
from codesign.experiment import read_config
from codesign.quant import QConv2d, set_quantization
from codesign.segdata import SegDataset, get_seg_dataset
from codesign.segnet import OPS, BlockChoice, SegArch, SegBlock, SegNet, default_arch
from codesign.segtrain import Schedule, distill_block, float_miou, int_miou, train_seg
from compiler.quantspec import LayerBits, QuantSpec
from hw.config import FieldReader, load_accel_config, read_yaml

MAX_ENUMERATED = 2_000_000  # combinations enumerated exactly; more: NSGA-II on the tables


@dataclass(frozen=True)
class Library:
    ops: tuple[str, ...] = OPS
    expand: tuple[int, ...] = (2, 4)
    kernel: tuple[int, ...] = (3,)
    dilation: tuple[int, ...] | None = None  # None: each position's teacher dilation
    bits: tuple[tuple[int, int], ...] = ((8, 8), (2, 8), (2, 2), (1, 8))

    def choices(self, teacher: BlockChoice) -> list[BlockChoice]:
        dil = self.dilation or (teacher.dilation,)
        found = {BlockChoice(o, e, k, d, w, a) for o in self.ops for e in self.expand
                 for k in self.kernel for d in dil for w, a in self.bits}
        found.add(teacher)  # the teacher's own block is always a candidate
        return sorted(found, key=lambda c: c.key)


@dataclass(frozen=True)
class SegExperiment:
    name: str
    dataset: str
    data: dict
    accelerator: str
    seed: int
    teacher: Schedule
    teacher_qat: Schedule
    library: Library
    distill: Schedule
    finetune: Schedule
    picks: int
    eval_images: int
    rtl_images: int
    directory: str | None = None
    # picks aimed at shares of the teacher's cycles (INT8) and size (mixed precision)
    targets: dict = field(default_factory=lambda: {"cycles": (0.8, 0.7),
                                                   "size_bits": (0.6, 0.5)})


def _schedule(r: FieldReader, field_: str, default: Schedule) -> Schedule:
    s = FieldReader(r.get(field_, {}) or {}, f"{r.where}: {field_}")
    s.check_known(("epochs", "batch_size", "lr", "images", "kd"))
    images = s.get("images", default.images)
    kd = s.number("kd", default=default.kd)
    if not 0 <= kd <= 1:
        raise s.fail("kd", f"the distillation weight is in [0, 1], not {kd!r}")
    return Schedule(s.int("epochs", 0, default=default.epochs),
                    s.int("batch_size", 1, default=default.batch_size),
                    s.number("lr", default=default.lr),
                    None if images is None else s.int("images", 1), kd)


def _bits(value, where: str) -> tuple[int, int]:
    try:
        w, a = (int(v) for v in str(value).split("/"))
    except ValueError:
        raise ConfigError(f"{where}: bits {value!r}: write weights/activations, like 2/8") \
            from None
    if w not in (1, 2, 8) or a not in (2, 8):
        raise ConfigError(f"{where}: bits {value!r}: weights 1, 2 or 8; inner activations 2 "
                          f"or 8 (block interfaces stay int8)")
    return w, a


def parse_segmentation(data, where: str) -> SegExperiment:
    r = FieldReader(data, where)
    r.check_known(("name", "task", "dataset", "data", "directory", "accelerator", "seed",
                   "teacher", "teacher_qat", "library", "distill", "finetune", "picks",
                   "eval_images", "rtl_images", "targets"))
    if r.get("task") != "segmentation":
        raise r.fail("task", "must be 'segmentation' for a block-wise search")
    name = r.name()  # the run directory's name and the study's
    from codesign.segdata import SEG_LOADERS
    dataset = r.choice("dataset", tuple(SEG_LOADERS), "fashion-scenes", "segmentation data set")
    d = r.get("data", {}) or {}
    if not isinstance(d, dict):
        raise r.fail("data", f"must be a mapping of loader arguments, not {d!r}")
    _check_loader_args(SEG_LOADERS[dataset], FieldReader(d, f"{where}: data"))
    lib = FieldReader(r.get("library", {}) or {}, f"{where}: library")
    lib.check_known(("ops", "expand", "kernel", "dilation", "bits"))
    ops = tuple(lib.list("ops", list(OPS)))
    if not ops or any(not isinstance(o, str) or o not in OPS for o in ops):
        raise lib.fail("ops", f"must be a list drawn from {', '.join(OPS)}, not {list(ops)!r}")
    dil = lib.get("dilation", "teacher")
    if dil != "teacher":
        dil = lib.list("dilation")
    library = Library(ops, tuple(lib.list("expand", [2, 4])), tuple(lib.list("kernel", [3])),
                      None if dil == "teacher" else tuple(dil),
                      tuple(_bits(b, f"{where}: library") for b in
                            lib.list("bits", ["8/8", "2/8", "2/2", "1/8"])))
    for f in ("expand", "kernel", "dilation"):
        v = getattr(library, f)
        if f == "dilation" and v is None:
            continue
        if not v or any(not isinstance(x, int) or isinstance(x, bool) or x < 1 for x in v):
            raise lib.fail(f, f"must be a list of integers >= 1{' or teacher' * (f == 'dilation')}"
                              f", not {list(v)!r}")
    accel = r.get("accelerator", "default")
    load_accel_config(accel)
    tg = FieldReader(r.get("targets", {}) or {}, f"{where}: targets")
    tg.check_known(("cycles", "size"))
    targets = {}
    for f, key, default in (("cycles", "cycles", (0.8, 0.7)), ("size", "size_bits", (0.6, 0.5))):
        v = tg.get(f, list(default))
        if not isinstance(v, list) or any(not isinstance(x, (int, float)) or not 0 < x <= 1
                                          for x in v):
            raise tg.fail(f, f"must be a list of shares of the teacher's in (0, 1], not {v!r}")
        targets[key] = tuple(float(x) for x in v)
    return SegExperiment(
        name, dataset, dict(d), accel, r.int("seed", 0, default=0),
        _schedule(r, "teacher", Schedule(6)), _schedule(r, "teacher_qat", Schedule(2, lr=1e-3)),
        library, _schedule(r, "distill", Schedule(3)),
        _schedule(r, "finetune", Schedule(2, lr=1e-3)), r.int("picks", 2, default=12),
        r.int("eval_images", 1, default=300), r.int("rtl_images", 0, default=2),
        r.get("directory", None), targets)


def _check_loader_args(loader, r: FieldReader) -> None:
    """The `data` arguments a segmentation loader takes, of its parameters' types (counts at
    least 1, a seed at least 0); `directory` is the experiment's own field."""
    import inspect
    params = {k: p.default for k, p in inspect.signature(loader).parameters.items()
              if k != "directory"}
    r.check_known(tuple(params))
    for k, default in params.items():
        if k not in r.data:
            continue
        if isinstance(default, bool):
            if not isinstance(r.data[k], bool):
                raise r.fail(k, f"must be true or false, not {r.data[k]!r}")
        elif isinstance(default, int) or (default is None and k == "limit"):
            r.int(k, 0 if k == "seed" else 1)
        elif isinstance(default, float):
            v = r.number(k)
            if not 0 <= v <= 1e6:
                raise r.fail(k, f"must be a number in [0, 1e6], not {v!r}")
        elif isinstance(default, tuple):
            v = r.list(k)
            if len(v) != len(default) or any(not isinstance(x, int) or isinstance(x, bool)
                                              or x < 1 for x in v):
                raise r.fail(k, f"must be a list of {len(default)} integers >= 1, not {v!r}")


def is_segmentation(path: str | Path) -> bool:
    try:
        data = read_yaml(path, "experiment config")
    except ConfigError:
        return False  # the experiment loader says what is wrong
    return isinstance(data, dict) and data.get("task") == "segmentation"


def load_segmentation(path: str | Path) -> SegExperiment:
    return parse_segmentation(read_config(path), str(path))


# --- phases -----------------------------------------------------------------------------------

class Run:
    """One block-wise search in its run directory; every phase stores what it measured and
    skips what is already there."""

    def __init__(self, exp: SegExperiment, run_dir: Path,
                 progress: Callable[[str], None] = print):
        self.exp, self.dir, self.say = exp, Path(run_dir), progress
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "blocks").mkdir(exist_ok=True)
        self.data: SegDataset = get_seg_dataset(exp.dataset, exp.directory,
                                                **({"seed": exp.seed} | exp.data)
                                                if exp.dataset == "fashion-scenes" else exp.data)
        self.arch: SegArch = default_arch(self.data.input_shape, self.data.classes)
        self.config = load_accel_config(exp.accelerator)
        self.times = self._json("times.json", {})

    # storage: JSON for figures, torch tensors (weights_only) for weights: nothing executes
    def _json(self, name: str, default):
        p = self.dir / name
        return json.loads(p.read_text()) if p.is_file() else default

    def _write(self, name: str, value) -> None:
        tmp = self.dir / f".{name}.tmp"
        tmp.write_text(json.dumps(value, indent=1))
        tmp.replace(self.dir / name)

    def _timed(self, phase: str, seconds: float) -> None:
        self.times[phase] = self.times.get(phase, 0.0) + seconds
        self._write("times.json", self.times)

    def _save_state(self, module: torch.nn.Module, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        torch.save(module.state_dict(), tmp)
        tmp.replace(path)

    @staticmethod
    def _load_state(module: torch.nn.Module, path: Path) -> None:
        module.load_state_dict(torch.load(path, weights_only=True))

    def teacher(self) -> SegNet:
        net = SegNet(self.arch)
        path = self.dir / "teacher.pt"
        if path.is_file():
            self._load_state(net, path)
            return net.eval()
        t0 = time.time()
        torch.manual_seed(self.exp.seed)
        net = SegNet(self.arch)
        self.say(f"teacher: float training, {self.exp.teacher.epochs} epochs")
        train_seg(net, self.data, self.exp.teacher, quantize=False, seed=self.exp.seed,
                  progress=self.say, what="teacher float")
        self.say(f"teacher: QAT at int8, {self.exp.teacher_qat.epochs} epochs")
        train_seg(net, self.data, self.exp.teacher_qat, quantize=True, seed=self.exp.seed + 1,
                  progress=self.say, what="teacher QAT")
        self._save_state(net, path)
        self._timed("teacher_s", time.time() - t0)
        return net.eval()

    def _features(self, teacher: SegNet, x: np.ndarray) -> list[torch.Tensor]:
        with torch.no_grad():
            return [torch.cat(f) for f in zip(*(teacher.encode(torch.from_numpy(x[i:i + 256]))
                                                 for i in range(0, len(x), 256)))]

    def blocks(self, teacher: SegNet) -> dict:
        """Every candidate block distilled once: {position: {key: held-out NSR}}."""
        table = self._json("blocks.json", {})
        todo = [(k, c) for k, pos in enumerate(self.arch.positions)
                for c in self.exp.library.choices(pos.teacher)
                if c.key not in table.get(str(k), {})]
        if not todo:
            return table
        s = self.exp.distill
        n = min(len(self.data.x_train), s.images or len(self.data.x_train))
        feats = self._features(teacher, self.data.x_train[:n])
        val = self._features(teacher, self.data.x_test[:min(len(self.data.x_test), 256)])
        self.say(f"blocks: {len(todo)} candidate blocks to distill ({n} images, {s.epochs} "
                 f"epochs each)")
        for i, (k, c) in enumerate(todo):
            t0 = time.time()
            torch.manual_seed(self.exp.seed + k)
            block = SegBlock(self.arch.positions[k], c)
            loss = distill_block(block, feats[k], feats[k + 1], val[k], val[k + 1], s,
                                 self.exp.seed + k)
            self._save_state(block, self.dir / "blocks" / f"p{k}_{c.key}.pt")
            table.setdefault(str(k), {})[c.key] = loss
            self._write("blocks.json", table)
            self._timed("blocks_s", time.time() - t0)
            self.say(f"  [{i + 1}/{len(todo)}] block {k} {c.key}: NSR {loss:.4f}")
        return table

    def hw_table(self) -> dict:
        """{position: {key: {cycles, energy_j, size_bits}}} of each block compiled alone."""
        from codesign.hwcost import network_cost
        from compiler.pipeline import compile_model

        table = self._json("hw_table.json", {})
        t0 = time.time()
        for k, pos in enumerate(self.arch.positions):
            shape = self.arch.feature_shape(k - 1)
            for c in self.exp.library.choices(pos.teacher):
                if c.key in table.get(str(k), {}):
                    continue
                torch.manual_seed(0)
                block = SegBlock(pos, c)
                spec = _spec(block)
                with _float(block) as f:
                    x = torch.randn(4, *shape)
                    net = compile_model(f, x[:1], self.config, spec, x.numpy())
                cost = network_cost(net, "estimate")
                table.setdefault(str(k), {})[c.key] = {
                    "cycles": cost.cycles, "energy_j": cost.energy_j,
                    "size_bits": cost.size_bits, "runs": len(net.program.segments)}
                self._write("hw_table.json", table)
        self._timed("hw_table_s", time.time() - t0)
        return table

    def fixed_cost(self, hw: dict) -> dict:
        """What the blocks' table leaves out (stem, ASPP, classifier, upsampling, hand-overs
        between blocks): the teacher compiled whole minus its blocks' sum (estimator)."""
        from codesign.hwcost import network_cost

        found = self._json("fixed_cost.json", None)
        if found is not None:
            return found
        torch.manual_seed(0)
        model = SegNet(self.arch)
        net = _compile(model, self.data, self.config)
        cost = network_cost(net, "estimate")
        whole = {"cycles": cost.cycles, "energy_j": cost.energy_j, "size_bits": cost.size_bits}
        found = {m: v - sum(hw[str(k)][c.key][m] for k, c in enumerate(self.arch.teacher))
                 for m, v in whole.items()} | {"teacher": whole}
        self._write("fixed_cost.json", found)
        return found

    def search(self, blocks: dict, hw: dict) -> dict:
        """Exact Pareto fronts over all combinations (predicted loss = sum of block NSRs;
        cycles, energy and size add up, plus the fixed part), INT8 only against cycles and
        mixed precision against size. Picks: for each target (a share of the teacher's cycles
        or size) the combination of least loss that meets it, then points spread along the
        fronts."""
        t0 = time.time()
        fixed = self.fixed_cost(hw)
        t_search = time.time()
        keys = [sorted(hw[str(k)]) for k in range(len(self.arch.positions))]
        keys = [[c for c in ks if c in blocks[str(k)]] for k, ks in enumerate(keys)]
        picks: dict[str, list[str]] = {"teacher": [c.key for c in self.arch.teacher]}
        fronts, per_space = {}, (self.exp.picks - 1) // 2
        for space, cost in (("int8", "cycles"), ("mixed", "size_bits")):
            allowed = [[c for c in ks if space == "mixed" or c.endswith("w8a8")] for ks in keys]
            combos, loss, costs = _enumerate(allowed, blocks, hw)
            for m in costs:
                costs[m] = costs[m] + fixed[m]
            front = _pareto(loss, costs[cost])
            order = front[np.argsort(costs[cost][front])]
            fronts[space] = [{"blocks": list(combos[i]), "loss": float(loss[i]),
                              **{m: float(v[i]) for m, v in costs.items()}} for i in order]
            chosen = []
            for share in self.exp.targets[cost]:
                ok = np.flatnonzero(costs[cost] <= share * fixed["teacher"][cost])
                if ok.size:
                    chosen.append(int(ok[np.argmin(loss[ok])]))
            want = per_space + (space == "int8") * ((self.exp.picks - 1) % 2)
            for i in _spread(order, want):
                if len(set(chosen)) >= want:
                    break
                chosen.append(i)
            for i in chosen:
                if list(combos[i]) not in picks.values():
                    picks[f"{space}-{sum(p.startswith(space) for p in picks)}"] = list(combos[i])
        result = {"picks": picks, "fronts": fronts, "fixed": fixed, "combinations": {
            s: int(np.prod([len([c for c in ks if s == "mixed" or c.endswith("w8a8")])
                            for ks in keys])) for s in ("int8", "mixed")},
            "seconds": time.time() - t_search}
        self._write("search.json", result)
        self._timed("search_s", time.time() - t0)
        return result

    def finetune(self, teacher: SegNet, picks: dict) -> dict:
        """Each pick assembled (teacher stem/ASPP/head, distilled blocks), finetuned end to
        end, compiled, measured: mIoU (integer semantics), cycles, energy, size."""
        from codesign.hwcost import network_cost

        results = self._json("finetuned.json", {})
        # what was measured, by blocks (names follow the picks, which a resume may change)
        measured = {(n == "teacher", tuple(r["blocks"])): r for n, r in results.items()}
        for name, keys in picks.items():
            known = measured.get((name == "teacher", tuple(keys)))
            if known is not None:
                if results.get(name) is not known:
                    results[name] = known
                    self._write("finetuned.json", results)
                continue
            results.pop(name, None)  # another model had this name: measure this one
            t0 = time.time()
            choices = tuple(BlockChoice.from_key(k) for k in keys)
            model = SegNet(self.arch, choices)
            own = {n: p for n, p in teacher.state_dict().items() if not n.startswith("blocks.")}
            model.load_state_dict(own, strict=False)
            if name != "teacher":
                for k, c in enumerate(choices):
                    self._load_state(model.blocks[k], self.dir / "blocks" / f"p{k}_{c.key}.pt")
            else:
                model.load_state_dict(teacher.state_dict())
            before = float_miou(model, self.data, self.exp.eval_images)
            train_seg(model, self.data, self.exp.finetune, quantize=True,
                      seed=self.exp.seed + 7, progress=self.say, what=f"finetune {name}",
                      teacher=teacher.eval() if name != "teacher" else None)
            net = _compile(model, self.data, self.config)
            with net.runner("reference") as ref:
                miou, _ = int_miou(ref, self.data, self.exp.eval_images)
            cost = network_cost(net, "estimate")
            results[name] = {
                "blocks": keys, "miou": miou, "float_miou_before": before,
                "fake_quant_miou": float_miou(model, self.data, self.exp.eval_images),
                "cycles": cost.cycles, "energy_j": cost.energy_j, "size_bits": cost.size_bits,
                "runs": len(net.program.segments),
                "host_ops": list(cost.host_ops), "seconds": time.time() - t0,
                "layers": {m.name: m.cycles for m in cost.layers}}
            self._save_state(model, self._model_path(name, keys))
            self._write("finetuned.json", results)
            self._timed("finetune_s", time.time() - t0)
            self.say(f"  {name}: mIoU {miou:.4f} (int), {cost.cycles} cycles, "
                     f"{cost.size_bits / 8 / 1024:.1f} KiB")
        return {n: results[n] for n in picks}

    def _model_path(self, name: str, keys: list[str]) -> Path:
        """A finetuned model's weights, by its blocks (names follow the picks)."""
        (self.dir / "models").mkdir(exist_ok=True)
        tag = "teacher" if name == "teacher" else \
            hashlib.sha1(",".join(keys).encode()).hexdigest()[:12]
        return self.dir / "models" / f"{tag}.pt"

    def rtl(self, results: dict, names: list[str]) -> dict:
        """Sampled images of the chosen models on the RTL: bit-exact against the integer
        reference; per-layer cycles as measured."""
        found = self._json("rtl.json", {})
        for name in names:
            blocks = results[name]["blocks"]
            if found.get(name, {}).get("blocks") == blocks or self.exp.rtl_images == 0:
                continue
            t0 = time.time()
            choices = tuple(BlockChoice.from_key(k) for k in results[name]["blocks"])
            model = SegNet(self.arch, choices)
            self._load_state(model, self._model_path(name, results[name]["blocks"]))
            net = _compile(model, self.data, self.config)
            exact = True
            with net.runner("rtl") as rtl, net.runner("reference") as ref:
                for i in range(self.exp.rtl_images):
                    x = self.data.x_test[i:i + 1]
                    exact &= bool(np.array_equal(rtl(x), ref(x)))
                layers = {r.name: r.cycles for r in rtl.layer_runs}
            found[name] = {"blocks": blocks, "images": self.exp.rtl_images, "bit_exact": exact,
                           "cycles": sum(layers.values()), "layers": layers,
                           "seconds": time.time() - t0}
            self._write("rtl.json", found)
            self._timed("rtl_s", time.time() - t0)
        return {n: found[n] for n in names if n in found}


def _spec(module: torch.nn.Module) -> QuantSpec:
    """Bits of a module's convolutions by path (scales calibrated: costs need no training)."""
    return QuantSpec(layers={n: LayerBits(m.w_bits, m.__dict__["_input_quant"].bits)
                             for n, m in module.named_modules() if isinstance(m, QConv2d)})


@contextlib.contextmanager
def _float(module: torch.nn.Module):
    """The module with fake quantization off, in eval mode, for as long as the block lasts."""
    set_quantization(module, False)
    try:
        yield module.eval()
    finally:
        set_quantization(module, True)


def _compile(model: SegNet, data: SegDataset, config):
    from compiler.pipeline import compile_model
    cal = torch.from_numpy(data.x_train[:64])
    with model.float_view() as f:
        return compile_model(f, cal[:1], config, model.quant_spec(), cal.numpy())


def _enumerate(allowed: list[list[str]], blocks: dict, hw: dict):
    """Every combination: keys, predicted loss (sum of NSRs) and summed costs."""
    combos = list(itertools.product(*allowed))
    if len(combos) > MAX_ENUMERATED:
        raise ConfigError(f"{len(combos)} block combinations: more than {MAX_ENUMERATED} to "
                          f"enumerate; narrow the library")
    loss = np.zeros(len(combos))
    costs = {m: np.zeros(len(combos)) for m in ("cycles", "energy_j", "size_bits")}
    grids = np.array([[ks.index(c) for c, ks in zip(combo, allowed)] for combo in combos]) \
        if combos else np.zeros((0, len(allowed)), int)
    for k, ks in enumerate(allowed):
        loss += np.array([blocks[str(k)][c] for c in ks])[grids[:, k]]
        for m in costs:
            costs[m] += np.array([hw[str(k)][c][m] for c in ks])[grids[:, k]]
    return combos, loss, costs


def _pareto(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats in both a and b (lower is better)."""
    order = np.lexsort((b, a))
    front, best = [], np.inf
    for i in order:
        if b[i] < best:
            front.append(i)
            best = b[i]
    return np.array(front, int)


def _spread(order: np.ndarray, n: int) -> list[int]:
    """n points spread evenly along a front (its ends included)."""
    if n <= 0 or len(order) == 0:
        return []
    idx = np.unique(np.round(np.linspace(0, len(order) - 1, min(n, len(order)))).astype(int))
    return [int(order[i]) for i in idx]


def kendall_tau(a, b) -> float:
    from scipy.stats import kendalltau
    return float(kendalltau(a, b).statistic)


def run(exp: SegExperiment, run_dir: Path, progress: Callable[[str], None] = print) -> dict:
    r = Run(exp, run_dir, progress)
    teacher = r.teacher()
    progress(f"teacher: float mIoU {float_miou(teacher, r.data, exp.eval_images):.4f} "
             f"(fake-quant int8)")
    blocks = r.blocks(teacher)
    progress("hardware table: every candidate block compiled alone (estimator)")
    hw = r.hw_table()
    found = r.search(blocks, hw)
    progress(f"search: {found['combinations']} combinations in {found['seconds']:.2f} s; "
             f"{len(found['picks'])} picks")
    results = r.finetune(teacher, found["picks"])
    summary = summarize(results, blocks, hw, found["fixed"])
    chosen = ["teacher"] + [n for n in (
        summary.get("smaller") or summary.get("smallest_mixed", {}).get("name"),
        summary.get("faster") or summary.get("fastest_int8", {}).get("name")) if n]
    summary["rtl"] = r.rtl(results, chosen)
    summary["times"] = r.times
    r._write("summary.json", summary)
    from codesign.segreport import write_seg_report
    progress(f"report: {write_seg_report(r.dir, results, found, summary)}")
    return summary


def predicted_loss(keys: list[str], blocks: dict) -> float:
    """The predictor's input: the sum of the blocks' held-out NSRs."""
    return float(sum(blocks[str(k)][c] for k, c in enumerate(keys)))


def summarize(results: dict, blocks: dict, hw: dict | None = None,
              fixed: dict | None = None) -> dict:
    """The must-show figures: the predictor (mIoU as a line in the summed block loss) and its
    Kendall tau against finetuned mIoU over the picks; the smallest mixed model within 0.5
    point of the teacher's mIoU that is smaller than it; the fastest INT8 one within 0.5 point
    that is faster."""
    t = results["teacher"]
    names = [n for n in results if n != "teacher"]
    out: dict = {"teacher": {k: t[k] for k in ("miou", "cycles", "energy_j", "size_bits")},
                 "models": len(names)}
    if hw and fixed:  # how well the block table's sums predict whole-network costs
        for m in ("cycles", "size_bits"):
            err = [abs(fixed[m] + sum(hw[str(k)][c][m] for k, c in enumerate(r["blocks"]))
                       - r[m]) / r[m] for r in results.values()]
            out[f"additive_{m}_error"] = {"mean": float(np.mean(err)), "max": float(max(err))}
    if len(names) >= 3:
        loss = np.array([predicted_loss(results[n]["blocks"], blocks) for n in names])
        miou = np.array([results[n]["miou"] for n in names])
        slope, icpt = np.polyfit(loss, miou, 1)
        out["predictor"] = {"kendall_tau": kendall_tau(-loss, miou), "slope": float(slope),
                            "intercept": float(icpt),
                            "points": [[float(a), float(b)] for a, b in zip(loss, miou)]}
    for space, metric, key, figure, best in (
            ("mixed", "size_bits", "smaller", "size_reduction", "smallest_mixed"),
            ("int8", "cycles", "faster", "cycle_reduction", "fastest_int8")):
        mine = [n for n in names if n.startswith(space)]
        if not mine:
            continue
        near = [n for n in mine if results[n]["miou"] >= t["miou"] - 0.005
                and results[n][metric] < t[metric]]
        if near:  # within 0.5 point of the teacher and better in the metric
            n = min(near, key=lambda n: results[n][metric])
            out[key], out[figure] = n, 1 - results[n][metric] / t[metric]
        n = min(mine, key=lambda n: results[n][metric])  # the best reached, whatever the mIoU
        out[best] = {"name": n, figure: 1 - results[n][metric] / t[metric],
                     "miou_loss": t["miou"] - results[n]["miou"]}
    return out


