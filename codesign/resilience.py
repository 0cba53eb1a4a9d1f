"""Fault-injection campaigns: how often bit flips at a bit-error rate change a network's decision.

The engine (`FaultEngine`) runs the compiled network's integer layers on batches of faulty
inferences, vectorised over the batch, with the semantics of the accelerator (the kinds' integer
reference, bit-exact with the RTL) and the faults of `codesign.faults`. It wires the layers as
the host graph does (`compiler.graph`), reproducing the host's float hand-over between layers
exactly, and checks itself against the host-graph runner on every traced image.

Statistics (statistical fault injection, Leveugle et al., DATE 2009): the injections per point
are chosen for a margin of error at a confidence level; the classification change rate (CCR,
the share of faulty inferences whose top-1 class differs from the fault-free one) and the
accuracy come with Wilson score intervals at that confidence.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace
from statistics import NormalDist

import numpy as np
import tvm
from tvm import relax

from codesign.errors import CodesignError
from codesign.faults import SITES, Flips, draw, faulty_layer, flip, protect, select
from codesign.progress import bar
from compiler.codegen import compile_layers
from compiler.errors import CompileError
from compiler.graph import Source, layer_sources
from compiler.hostkernels import host_kernels
from compiler.intsem import quantize_act, wrap32
from compiler.kinds import get_kind
from compiler.layer_ir import Dense
from compiler.reference import padded, weight_flip_deltas
from compiler.runtime import CompiledNetwork

FAULT_CHUNK = 2048  # weight faults gathered at once (bounds the memory of their windows)


# --- statistics ------------------------------------------------------------------------------

def injections_needed(margin: float, confidence: float = 0.95, population: float = math.inf,
                      p: float = 0.5) -> int:
    """Leveugle et al.: n = N t^2 p(1-p) / (e^2 (N-1) + t^2 p(1-p)); p = 0.5 is the worst
    case. For an unbounded population: t^2 p(1-p) / e^2 (9,604 for 1% at 95%)."""
    if not 0 < margin < 1 or not 0 < confidence < 1:
        raise CodesignError(f"margin {margin} and confidence {confidence} must be in (0, 1)")
    t = NormalDist().inv_cdf(0.5 + confidence / 2)
    q = t * t * p * (1 - p)
    n = q / margin**2 if math.isinf(population) else \
        population * q / (margin**2 * (population - 1) + q)
    return math.ceil(n - 1e-9)


def wilson(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion."""
    if n == 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


# --- the engine ------------------------------------------------------------------------------

def output_kernel(net: CompiledNetwork):
    """(the layer it reads, the kernel) when the network's output is a host integer kernel
    (a TFLite model's last SOFTMAX) applied to a layer's output; else None."""
    kernels = host_kernels(net._host)
    bound = {b.var: b.value for block in net._host["main"].body.blocks for b in block.bindings}
    out = net._host["main"].body.body
    while isinstance(out, relax.Var) and out in bound and not isinstance(bound[out],
                                                                           relax.Call):
        out = bound[out]
    while isinstance(out, relax.Tuple) and len(out.fields) == 1:
        out = out.fields[0]
    call = bound.get(out) if isinstance(out, relax.Var) else out
    if not (isinstance(call, relax.Call) and isinstance(call.op, tvm.ir.GlobalVar)
            and call.op.name_hint in kernels):
        return None
    arg = bound.get(call.args[0])
    if isinstance(arg, relax.Call) and isinstance(arg.op, tvm.ir.GlobalVar) \
            and arg.op.name_hint in net._func_layer:
        return net._func_layer[arg.op.name_hint], kernels[call.op.name_hint]
    return None


class FaultEngine:
    """The compiled network's accelerator layers on batches of (image, faults), numpy."""

    def __init__(self, net: CompiledNetwork):
        self.net = net
        self.layers = list(net.layers)
        self.by_name = {layer.name: layer for layer in self.layers}
        self.sources, out = layer_sources(net._host, net._func_layer)
        self.finish = None  # a TFLite model's last host step (its integer softmax)
        tail = output_kernel(net)
        if tail is not None:
            out, self.finish = Source("layer", tail[0]), tail[1]
        for name, srcs in self.sources.items():
            for i, s in enumerate(srcs):
                if s.kind == "host":
                    raise CodesignError(
                        f"layer {name}: input {i} is computed on the host ({s.name}) from "
                        f"other layers' outputs; the fault engine propagates faults only "
                        f"through accelerator layers and reshapes")
        if out.kind != "layer":
            raise CodesignError(f"the network output comes from the host ({out.name or 'input'})"
                                f", not straight from an accelerator layer: no decision to "
                                f"compare under faults")
        self.output = out.name

    def trace(self, images: np.ndarray) -> "Trace":
        """The fault-free run of every image on the host-graph runner (numpy reference): the
        inputs the host hands the layers that read the network input, and the logits."""
        fixed: dict[tuple[str, int], list[np.ndarray]] = {}
        logits = []
        runner = self.net.runner("reference")
        inner = runner.backend.run

        def recording(name, *xs):
            for i, s in enumerate(self.sources[name]):
                if s.kind == "input":
                    fixed.setdefault((name, i), []).append(np.asarray(xs[i]).ravel())
            return inner(name, *xs)

        runner.backend.run = recording
        shown = bar(len(images), "fault-free trace")
        try:
            for x in images:
                logits.append(np.asarray(runner(x[None]), np.float64).ravel())
                shown.update()
        finally:
            shown.close()
            runner.close()
        trace = Trace({k: np.stack(v) for k, v in fixed.items()}, np.stack(logits),
                      np.asarray(images, np.float32))
        clean = self.run(trace, np.arange(len(images)), {}).reshape(len(images), -1)
        differ = np.any(clean != trace.logits.astype(np.float32), axis=1)
        if differ.any():
            raise CodesignError(f"the fault engine's fault-free output differs from the "
                                f"host-graph runner's on traced image "
                                f"{int(np.flatnonzero(differ)[0])}")
        return trace

    def run(self, trace: "Trace", images: np.ndarray, flips: dict[tuple[str, str], Flips]
            ) -> np.ndarray:
        """The network output (float32, as the host reads it) for each injection: image
        images[b] with the faults of injection b."""
        values: dict[str, np.ndarray] = {}
        batch = len(images)
        for layer in self.layers:
            kind = get_kind(layer.kind)
            xs = [self._input(layer, i, s, values, trace, images)
                  for i, s in enumerate(self.sources[layer.name])]
            acc = kind.accumulate(layer, *xs)
            out = layer.out
            if kind.accumulates(layer):
                acc = self._faulty_accumulators(layer, acc, xs, flips)
                out = self._faulty_output(layer, batch, flips)
            y = kind.output(layer, acc, out)
            if (f := flips.get((layer.name, "output"))) is not None:
                flat = y.reshape(batch, -1)
                flat[f.item, f.index] = flip(flat[f.item, f.index], f.tensor.fmt, f.mask)
            values[layer.name] = y
        if self.finish is not None:
            y = values[self.output]
            return self.finish(y.reshape(batch, -1)).astype(np.float32)
        return self._dequantized(self.output, values[self.output])

    def decisions(self, trace: "Trace", images: np.ndarray,
                  flips: dict[tuple[str, str], Flips]) -> np.ndarray:
        """Top-1 class of each injection."""
        return argmax(self.run(trace, images, flips))

    def _dequantized(self, name: str, y: np.ndarray) -> np.ndarray:
        """What the host holds of a layer's output: int * scale, in float32 (`runtime`)."""
        scale = np.asarray(self.by_name[name].out.scale, np.float64)
        scale = scale.reshape((1, -1) + (1,) * (y.ndim - 2))
        return (y.astype(np.float64) * scale).astype(np.float32)

    def _input(self, layer, i, source, values, trace, images) -> np.ndarray:
        if source.kind == "input":
            return trace.fixed[(layer.name, i)][images]
        y = self._dequantized(source.name, values[source.name])
        s, bits = get_kind(layer.kind).input_formats(layer)[i]
        return quantize_act(y.reshape(len(y), -1), s, bits)

    def _faulty_accumulators(self, layer, acc, xs, flips) -> np.ndarray:
        name = layer.name
        w, b, a = (flips.get((name, t)) for t in ("weight", "bias", "accumulator"))
        if w is None and b is None and a is None:
            return acc
        acc = acc.copy()
        per_channel = acc.reshape(len(acc), acc.shape[1], -1)
        if w is not None:
            conv = layer.as_conv() if isinstance(layer, Dense) else layer
            xp = padded(conv, xs[0])  # once: every chunk of faults gathers from it
            o, c, ky, kx = np.unravel_index(w.index, conv.weight.shape)
            old = conv.weight.reshape(-1)[w.index].astype(np.int64)
            delta = flip(old, w.tensor.fmt, w.mask) - old
            for k in range(0, len(delta), FAULT_CHUNK):
                part = slice(k, k + FAULT_CHUNK)
                d = weight_flip_deltas(conv, xp, w.item[part], o[part], c[part], ky[part],
                                       kx[part], delta[part])
                np.add.at(per_channel, (w.item[part], o[part]), d.reshape(len(d), -1))
        if b is not None:
            old = layer.bias.astype(np.int64)[b.index]
            np.add.at(per_channel, (b.item, b.index), (flip(old, "int32", b.mask) - old)[:, None])
        acc = wrap32(acc)
        if a is not None:
            flat = acc.reshape(len(acc), -1)
            flat[a.item, a.index] = flip(flat[a.item, a.index], "int32", a.mask)
        return acc

    def _faulty_output(self, layer, batch, flips):
        """The layer's post-processing with its faulty parameters, one set per injection."""
        out = layer.out

        def per_item(values, key):
            f = flips.get((layer.name, key))
            if f is None:
                return values
            table = np.tile(np.asarray(values, np.int64), (batch, 1))
            table[f.item, f.index] = flip(table[f.item, f.index], f.tensor.fmt, f.mask)
            return table

        if out.requant is not None:
            rq = out.requant
            out = replace(out, requant=replace(rq, multiplier=per_item(rq.multiplier,
                                                                       "multiplier"),
                                               shift=per_item(rq.shift, "shift")))
        if out.thresholds is not None:
            out = replace(out, thresholds=per_item(out.thresholds, "thresholds"))
        return out


def argmax(out: np.ndarray) -> np.ndarray:
    return out.reshape(len(out), -1).argmax(axis=1)


@dataclass(frozen=True)
class Trace:
    fixed: dict[tuple[str, int], np.ndarray]  # (layer, input) -> [images, values]
    logits: np.ndarray  # [images, outputs], fault-free
    images: np.ndarray  # the float inputs


# --- campaigns -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Point:
    """One campaign: faults at one BER in the chosen sites and layers."""

    ber: float
    sites: tuple[str, ...]
    layers: tuple[str, ...]  # empty: all
    injections: int
    changed: int  # faulty inferences whose top-1 differs from the fault-free one (silently)
    correct: int | None  # faulty inferences whose top-1 is the label (None: no labels)
    flips_per_injection: float
    confidence: float
    seconds: float
    protection: str = "none"  # the data memory's (hw.config.PROTECTION)
    detected: int = 0  # injections whose error the protection detected (re-run: no change)

    @property
    def ccr(self) -> float:
        return self.changed / self.injections

    @property
    def ccr_ci(self) -> tuple[float, float]:
        return wilson(self.changed, self.injections, self.confidence)

    @property
    def accuracy(self) -> float | None:
        return None if self.correct is None else self.correct / self.injections

    @property
    def accuracy_ci(self) -> tuple[float, float] | None:
        return None if self.correct is None else \
            wilson(self.correct, self.injections, self.confidence)

    def as_dict(self) -> dict:
        d = asdict(self)
        d.update(sites=list(self.sites), layers=list(self.layers), ccr=self.ccr,
                 ccr_ci=list(self.ccr_ci), accuracy=self.accuracy,
                 accuracy_ci=self.accuracy_ci and list(self.accuracy_ci),
                 injections_per_s=self.injections / self.seconds if self.seconds else None)
        return d


def campaign(engine, trace: Trace, labels: np.ndarray | None, ber: float,
             injections: int, sites=SITES, layers=None, confidence: float = 0.95,
             seed: int = 0, batch: int = 500, protection: str | None = None) -> Point:
    """`injections` faulty inferences on `engine` (a FaultEngine or a MachineFaultEngine),
    image i % images for injection i, faults drawn afresh for each; labels (optional) give
    the accuracy under faults. The data memory's protection is the accelerator's unless
    `protection` names one."""
    tensors = select(engine.net.layers, sites, layers)
    protection = protection or engine.net.config.dmem_protection
    rng = np.random.default_rng(seed)
    clean = trace.logits.argmax(axis=1)
    n_images = len(clean)
    changed = correct = flipped = detected = 0
    start = time.perf_counter()
    shown = bar(injections, f"BER {ber:g}: injections")
    for first in range(0, injections, batch):
        images = np.arange(first, min(first + batch, injections)) % n_images
        flips = draw(tensors, ber, len(images), rng)
        flipped += sum(int(np.bitwise_count(f.mask).sum()) for f in flips.values())
        flips, caught = protect(flips, protection, ber, rng)
        detected += len(caught)
        top1 = engine.decisions(trace, images, flips)
        changed += int(np.count_nonzero(top1 != clean[images]))
        if labels is not None:
            correct += int(np.count_nonzero(top1 == np.asarray(labels)[images]))
        shown.update(len(images))
    shown.close()
    return Point(ber, tuple(sites), tuple(layers or ()), injections, changed,
                 None if labels is None else correct,
                 flipped / injections, confidence, time.perf_counter() - start, protection,
                 detected)


# --- the same faults on an engine of the accelerator -----------------------------------------

class MachineFaultEngine:
    """Faults injected into the memories of the Verilated core (or the golden model) through
    the harness, one faulty inference at a time.

    The network is compiled with every parameter row its own (`share_rows=False`), so each
    stored value has its own words. Weight and parameter faults: the layers with the faulty
    values are compiled again, and the bits in which that data-memory (and off-chip) image
    differs from the fault-free one are flipped in the harness's memories before the run, then
    restored: every copy the compiler keeps of a value changes, in whatever bits its stored word
    needs. A faulty value the compiler does not store (a weight of an all-zero row it skips)
    raises `NotStored`. Activation faults: the bits of the layer's output buffer, flipped in the
    data memory after the layer's run, before the host reads it."""

    SITES = ("weights", "params", "activations")

    def __init__(self, net: CompiledNetwork, engine: str = "rtl"):
        self.net, self.engine = net, engine
        stems = frozenset(n for n, b in net.program.layers.items() if b.im2col is not None)
        self._compile = lambda layers: compile_layers(layers, net.config, host_inputs=stems,
                                                      share_rows=False)
        self.program = self._compile(net.layers)
        self.runner = replace(net, program=self.program).runner(engine)
        self.backend = self.runner.backend
        self.backend.after_run = self._flip_output
        self._outputs: dict[str, Flips] = {}

    def close(self) -> None:
        self.runner.close()

    def trace(self, images: np.ndarray) -> Trace:
        """The fault-free decisions of this engine on the images."""
        logits = [np.asarray(self.run(x, {}), np.float64).ravel() for x in images]
        return Trace({}, np.stack(logits), np.asarray(images, np.float32))

    def decisions(self, trace: Trace, images: np.ndarray,
                  flips: dict[tuple[str, str], Flips]) -> np.ndarray:
        """Top-1 class of each injection, one run each."""
        out = []
        for b, image in enumerate(images):
            mine = {k: Flips(f.tensor, f.item[f.item == b] * 0, f.index[f.item == b],
                             f.mask[f.item == b]) for k, f in flips.items()}
            out.append(int(argmax(self.run(trace.images[image], mine)[None])[0]))
        return np.array(out, np.int64)

    def run(self, image: np.ndarray, flips: dict[tuple[str, str], Flips]) -> np.ndarray:
        """The network output (float32) for one image with the faults of one injection (item
        0 of `flips`)."""
        memory = [f for f in flips.values() if f.tensor.site in ("weights", "params")]
        writes = self._memory_writes(memory) if memory else []
        self._outputs = {f.tensor.layer: f for f in flips.values()
                         if f.tensor.site == "activations"}
        bad = [f.tensor.site for f in flips.values()
               if f.tensor.site not in ("weights", "params", "activations")]
        if bad:
            raise CodesignError(f"the {self.engine} engine injects memory faults (weights, "
                                f"params, activations), not {bad[0]}")
        m = self.backend.machine
        try:
            for where, addr, faulty, _ in writes:
                (m.write_dmem if where == "dmem" else m.write_offchip)(addr, faulty)
            return np.asarray(self.runner(image[None]), np.float32)
        finally:
            for where, addr, _, clean in writes:
                (m.write_dmem if where == "dmem" else m.write_offchip)(addr, clean)
            self._outputs = {}

    def _memory_writes(self, flips: list[Flips]) -> list[tuple[str, int, bytes, bytes]]:
        by_layer: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
        for f in flips:
            by_layer.setdefault(f.tensor.layer, {})[f.tensor.tensor] = (f.index, f.mask)
        layers = [faulty_layer(layer, by_layer[layer.name]) if layer.name in by_layer else layer
                  for layer in self.net.layers]
        try:
            faulty = self._compile(layers)
        except CompileError as exc:
            raise NotStored(f"the faulty values do not compile: {exc}") from None
        if faulty.listing != self.program.listing or \
                [(a, len(d)) for a, d in faulty.image] != \
                [(a, len(d)) for a, d in self.program.image] or \
                [(a, len(d)) for a, d in faulty.offchip] != \
                [(a, len(d)) for a, d in self.program.offchip]:
            raise NotStored("a faulty value changes the program or its memory layout: the "
                            "compiler does not store it as a word of its own")
        writes = []
        for where, clean_segs, faulty_segs in (("dmem", self.program.image, faulty.image),
                                               ("offchip", self.program.offchip, faulty.offchip)):
            for (addr, clean), (_, bad) in zip(clean_segs, faulty_segs):
                if clean != bad:
                    writes.append((where, addr, bad, clean))
        return writes

    def _flip_output(self, binding, machine, tile: int) -> None:
        f = self._outputs.get(binding.layer.name)
        if f is None:
            return
        out = binding.output
        c, y, x = np.unravel_index(f.index, binding.layer.out_shape + (1,) * (
            3 - len(binding.layer.out_shape)))
        if binding.row_tiling is not None:  # this tile's rows of the output
            rows = binding.row_tiling.rows
            mine = y // rows == tile
            c, y, x, masks = c[mine], y[mine] % rows, x[mine], f.mask[mine]
        else:
            masks = f.mask
        if not len(masks):
            return
        offsets = out.bit_offsets()[c, y, x]  # of each faulty value's stored code
        raw = np.unpackbits(machine.read_dmem(out.addr, out.size), bitorder="little")
        for off, mask in zip(offsets, masks):
            for bit in range(out.bits):
                if int(mask) >> bit & 1:
                    raw[off + bit] ^= 1
        machine.write_dmem(out.addr, np.packbits(raw, bitorder="little"))


class NotStored(CodesignError):
    """A faulty value that no word of the compiled program holds."""


# --- a whole study, as the command runs it ---------------------------------------------------

ENGINES = ("reference", "rtl", "golden")


def analyze(net: CompiledNetwork, images: np.ndarray, labels: np.ndarray | None, bers,
            sites=SITES, engine: str = "reference", injections: int | None = None,
            margin: float = 0.01, confidence: float = 0.95, layer_ber: float | None = None,
            seed: int = 0, progress=print) -> dict:
    """CCR (and accuracy) against BER for the chosen sites together and each alone, every
    layer alone at `layer_ber`, and the topology predictor's CCR next to them."""
    from codesign.sensitivity import layer_sensitivity, predicted_ccr

    if engine not in ENGINES:
        raise CodesignError(f"unknown fault engine {engine!r}; engines: {', '.join(ENGINES)}")
    n = injections or injections_needed(margin, confidence)
    if engine == "reference":
        eng = FaultEngine(net)
    else:
        eng = MachineFaultEngine(net, engine)
        bad = [s for s in sites if s not in MachineFaultEngine.SITES]
        if bad:
            eng.close()
            raise CodesignError(f"the {engine} engine injects faults into memories "
                                f"({', '.join(MachineFaultEngine.SITES)}), not {bad[0]}: use "
                                f"--engine reference for {bad[0]}")
    try:
        trace = eng.trace(images)
        groups = [tuple(sites)] + ([(s,) for s in sites] if len(sites) > 1 else [])
        curves = {}
        for group in groups:
            key = "+".join(group)
            curves[key] = []
            for ber in bers:
                p = campaign(eng, trace, labels, ber, n, group, confidence=confidence, seed=seed)
                d = p.as_dict() | {"predicted_ccr": predicted_ccr(
                    net.layers, ber, group, net.config.dmem_protection)}
                curves[key].append(d)
                lo, hi = p.ccr_ci
                progress(f"  {key:<40} BER {ber:8.1e}: CCR {p.ccr:.4f} [{lo:.4f}, {hi:.4f}]"
                         + (f", accuracy {p.accuracy:.4f}" if p.accuracy is not None else "")
                         + (f", {p.detected} detected" if p.detected else "")
                         + f"  ({p.flips_per_injection:.2f} flips, "
                         f"{p.injections / p.seconds:.0f}/s)")
        layer_ber = layer_ber or bers[len(bers) // 2]
        per_layer = []
        for layer in net.layers:
            if not select([layer], sites):
                continue
            p = campaign(eng, trace, labels, layer_ber, n, sites, (layer.name,),
                         confidence=confidence, seed=seed)
            per_layer.append(p.as_dict() | {
                "layer": layer.name, "index": sum(layer_sensitivity(layer, sites).values())})
            lo, hi = p.ccr_ci
            progress(f"  layer {layer.name:<34} BER {layer_ber:8.1e}: CCR {p.ccr:.4f} "
                     f"[{lo:.4f}, {hi:.4f}]")
    finally:
        if isinstance(eng, MachineFaultEngine):
            eng.close()
    worst = max(per_layer, key=lambda d: d["ccr"]) if per_layer else None
    return {"engine": engine, "sites": list(sites), "confidence": confidence,
            "protection": net.config.dmem_protection,
            "margin": None if injections else margin, "injections_per_point": n,
            "images": len(images), "fault_free_accuracy": None if labels is None else
            float(np.mean(trace.logits.argmax(axis=1) == np.asarray(labels))),
            "curves": curves, "layer_ber": layer_ber, "per_layer": per_layer,
            "most_sensitive_layer": worst and worst["layer"]}


def plot(result: dict, path) -> None:
    """CCR against BER per site group, with the confidence intervals."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for key, pts in result["curves"].items():
        ber = [p["ber"] for p in pts]
        ccr = np.array([p["ccr"] for p in pts])
        lo, hi = (np.array([p["ccr_ci"][k] for p in pts]) for k in (0, 1))
        # (a rate of 0 or 1 has an interval that ends there: rounding must not go past it)
        ax.errorbar(ber, ccr, yerr=[np.maximum(ccr - lo, 0), np.maximum(hi - ccr, 0)],
                    marker="o", capsize=3, label=key)
    ax.set_xscale("log")
    ax.set_xlabel("bit-error rate")
    ax.set_ylabel("classification change rate")
    ax.set_title(f"{result['engine']} engine, {result['injections_per_point']} injections per "
                 f"point ({round(100 * result['confidence'])}% intervals)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --- permanent faults of the vector unit (the RTL's fault-injection build) -------------------

def stuck_at(net: CompiledNetwork, images: np.ndarray, faults: list[tuple[int, int, int]],
             confidence: float = 0.95, progress=print) -> list[dict]:
    """Permanent stuck-at faults on the Verilated core's fault-injection build: for each
    (lane, bit, value), bit `bit` of vector-unit lane `lane`'s accumulator register reads as
    `value` on every access, over every image; the CCR against the fault-free run."""
    runner = net.runner("rtl-fault")
    machine = runner.backend.machine
    try:
        def decisions() -> np.ndarray:
            return np.array([int(np.argmax(runner(x[None]))) for x in images])

        clean = decisions()
        found = []
        for lane, bit, value in faults:
            if not 0 <= bit < 32 or value not in (0, 1):
                raise CodesignError(f"stuck-at fault {lane}:{bit}:{value}: the bit is 0..31 "
                                    f"and the value 0 or 1")
            mask = 1 << bit
            machine.stuck_at(lane, mask if value == 0 else 0, mask if value == 1 else 0)
            changed = int(np.count_nonzero(decisions() != clean))
            machine.stuck_at(0)
            lo, hi = wilson(changed, len(images), confidence)
            found.append({"lane": lane, "bit": bit, "value": value, "images": len(images),
                          "changed": changed, "ccr": changed / len(images), "ccr_ci": [lo, hi]})
            progress(f"  lane {lane:>4} bit {bit:>2} stuck at {value}: CCR "
                     f"{changed / len(images):.4f} [{lo:.4f}, {hi:.4f}]")
    finally:
        runner.close()
    return found
