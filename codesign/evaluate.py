"""The seam between search and hardware: an `Evaluator` turns a trained model into `Metrics`.

Evaluators are chosen by name:
- `rtl`: the compiled network on the Verilated core (accuracy, cycles and counters measured);
- `golden`: the same on the instruction-level model (slower, no build);
- `estimate`: accuracy from the numpy integer reference (bit-exact with the RTL), cycles and
  energy from the analytic estimator over the schedule (no simulation);
- `screen`: `estimate` for every candidate, then the RTL for those that may enter the Pareto
  front of the candidates seen so far (the multi-fidelity policy).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import torch

from codesign.data import Dataset
from codesign.errors import CodesignError
from codesign.hwcost import layer_metrics
from codesign.metrics import Metrics
from codesign.models import QuantNet
from codesign.modes import SEARCH
from codesign.objectives import OBJECTIVES
from codesign.progress import bar
from compiler.estimate import estimate
from compiler.pipeline import compile_model
from compiler.runtime import CompiledNetwork
from hw.config import AccelConfig


class Evaluator(ABC):
    """The seam between the search and the hardware: a trained candidate in, its `Metrics`
    (accuracy on the accelerator's integer semantics, cycles, energy, size) out. Subclasses
    differ in fidelity (RTL, golden model, estimator, screening); `get_evaluator` picks one."""

    name = "base"

    @abstractmethod
    def evaluate(self, model: QuantNet, data: Dataset,
                 progress: Callable[[str], None] | None = None) -> Metrics: ...


CALIBRATION_IMAGES = 64  # training images that calibrate the scales QAT did not fix


def compile_quantnet(model: QuantNet, config: AccelConfig,
                     calibration: np.ndarray | None = None) -> CompiledNetwork:
    """Compile with the model's bit widths and trained input scales; the others (residual adds,
    projections, every scale after post-training quantization) come from `calibration`."""
    example = torch.zeros((1, *model.input_shape))
    with model.float_view() as float_model:
        return compile_model(float_model, example, config, model.quant_spec(), calibration)


@dataclass(frozen=True)
class ResilienceSpec:
    """What the resilience objectives measure: CCR at `ber` with faults in `sites`, over
    `injections` faulty inferences on the first `images` test images (the reference engine,
    whose memory faults match the RTL's bit for bit); `measure` False: the proxy only."""

    ber: float = 1e-4
    injections: int = 2401  # +-2% at 95% (Leveugle)
    sites: tuple[str, ...] = ("weights", "params", "activations", "accumulators")
    images: int = 500
    measure: bool = True


class AcceleratorEvaluator(Evaluator):
    """Compiles the model and runs test images on an engine of the accelerator, or (engine
    `estimate`) on the integer reference with the estimator's cycles and energy; with a
    `ResilienceSpec`, the predicted and (if asked) the injected CCR besides."""

    def __init__(self, config: AccelConfig, images: int | None = None, engine: str = "rtl",
                 resilience: ResilienceSpec | None = None):
        self.config, self.images, self.name = config, images, engine
        self.resilience = resilience

    def evaluate(self, model, data, progress=None) -> Metrics:
        k = getattr(getattr(model, "candidate", None), "ensemble", 1)
        if k > 1:
            return self._ensemble(model, data, k)
        net = compile_quantnet(model, self.config, data.x_train[:CALIBRATION_IMAGES])
        backend = "reference" if self.name == "estimate" else self.name
        with net.runner(backend) as runner:
            metrics = self._measure(net, model, data, runner, progress)
        if self.resilience is not None:
            metrics = replace(metrics, **self._resilience(net, data))
        if self.name != "estimate":
            return metrics
        layers = layer_metrics(net, estimate(net.program))
        cycles = sum(layer.cycles for layer in layers)
        return replace(metrics, cycles=cycles, latency_s=cycles / (self.config.clock_mhz * 1e6),
                       energy_j=sum(layer.energy_j for layer in layers), layers=layers,
                       sim_cycles_per_s=0.0, fidelity="estimate")

    def _ensemble(self, model, data, k: int) -> Metrics:
        """k stochastic members (codesign.ensemble): accuracy of their summed logits; cycles
        and energy of the members back to back with identical layers on identical inputs run
        once (measured on the engine; for `estimate`, the estimator's counters without the
        shared prefix of members after the first); resilience of one member."""
        from codesign.ensemble import (SharedBackend, Sharing, compile_members,
                                       ensemble_size_bits, shared_prefix)

        cal, spec = data.x_train[:CALIBRATION_IMAGES], model.quant_spec()
        members = compile_members(model, spec, k, 0,
                                  lambda m: compile_quantnet(m, self.config, cal))
        n = min(self.images or len(data.x_test), len(data.x_test))
        backend = "reference" if self.name == "estimate" else self.name
        sharing, runners = Sharing({}), [net.runner(backend) for net in members]
        correct, sim_time, layers = 0, 0.0, ()
        try:
            for r in runners:
                r.backend = SharedBackend(r.backend, sharing)
            shown = bar(n, f"{self.name}: test images x {k} members")
            for i in range(n):
                sharing.outputs.clear()  # share within an input, never across inputs
                start = time.perf_counter()
                total = sum(np.asarray(r(data.x_test[i:i + 1]), np.float64).ravel()
                            for r in runners)
                sim_time += time.perf_counter() - start
                correct += int(np.argmax(total) == data.y_test[i])
                if i == 0 and backend != "reference":
                    layers = tuple(
                        replace(m, name=f"m{j}:{m.name}") for j, (net, r) in
                        enumerate(zip(members, runners)) for m in
                        layer_metrics(net, {x.name: x.counters for x in r.layer_runs}))
                shown.update()
            shown.close()
        finally:
            for r in runners:
                r.close()
        if backend == "reference":  # the estimator's counters, the prefix run once
            shared = set(shared_prefix(members[0].layers))
            layers = tuple(
                replace(m, name=f"m{j}:{m.name}") for j, net in enumerate(members) for m in
                layer_metrics(net, {name: c for name, c in estimate(net.program).items()
                                    if j == 0 or name not in shared}))
        cycles = sum(m.cycles for m in layers)
        metrics = Metrics(
            accuracy=correct / n, images=n, cycles=cycles,
            latency_s=cycles / (self.config.clock_mhz * 1e6),
            energy_j=sum(m.energy_j for m in layers),
            size_bits=ensemble_size_bits(model, spec, k), layers=layers,
            sim_cycles_per_s=cycles * n / sim_time if backend != "reference" and sim_time
            else 0.0, fidelity=self.name, accelerator=self.config.name)
        if self.resilience is not None:
            metrics = replace(metrics, **self._resilience(members[0], data))
        return metrics

    def _resilience(self, net: CompiledNetwork, data) -> dict:
        from codesign.resilience import FaultEngine, campaign
        from codesign.sensitivity import predicted_ccr

        spec = self.resilience
        found = {"ccr_proxy": predicted_ccr(net.layers, spec.ber, spec.sites,
                                            net.config.dmem_protection)}
        if not spec.measure:
            return found | {"ccr": found["ccr_proxy"], "ccr_fidelity": "proxy"}
        engine = FaultEngine(net)
        trace = engine.trace(data.x_test[:spec.images])
        point = campaign(engine, trace, None, spec.ber, spec.injections, spec.sites)
        return found | {"ccr": point.ccr, "ccr_fidelity": "injection"}

    def _measure(self, net, model, data, runner, progress) -> Metrics:
        n = min(self.images or len(data.x_test), len(data.x_test))
        correct, sim_time, cycles, runs = 0, 0.0, None, None
        shown = bar(n, f"{self.name}: test images")
        for i in range(n):
            start = time.perf_counter()
            logits = runner(data.x_test[i:i + 1])
            sim_time += time.perf_counter() - start
            correct += int(np.argmax(logits) == data.y_test[i])
            if cycles is None:
                cycles, runs = runner.cycles, list(runner.layer_runs)
            elif runner.cycles != cycles:  # static schedules: data cannot change the count
                raise CodesignError(f"cycle count changed between inputs ({cycles} vs "
                                    f"{runner.cycles}): the compiled program is not static")
            shown.update()
            shown.set_postfix(accuracy=f"{correct / (i + 1):.3f}")
            if progress and (i + 1) % 100 == 0:
                progress(f"{self.name}: {i + 1}/{n} test images, accuracy {correct / (i + 1):.3f}")
        shown.close()
        layers = layer_metrics(net, {r.name: r.counters for r in runs}) if runs else ()
        cycles = cycles or 0
        return Metrics(
            accuracy=correct / n, images=n, cycles=cycles,
            latency_s=cycles / (self.config.clock_mhz * 1e6),
            energy_j=sum(layer.energy_j for layer in layers), size_bits=model.size_bits(),
            layers=layers, sim_cycles_per_s=cycles * n / sim_time if sim_time and cycles else 0.0,
            fidelity=self.name, accelerator=self.config.name)


# Objectives the screening policy compares on: (Metrics field, larger is better).
SCREEN_OBJECTIVES = tuple((OBJECTIVES[o].field, OBJECTIVES[o].maximize)
                          for o in ("accuracy", "cycles", "energy", "size"))


class ScreeningEvaluator(Evaluator):
    """Multi-fidelity: every candidate through the estimator (and the resilience proxy);
    those not dominated by any candidate seen so far are confirmed on the RTL, with fault
    injection for their CCR (whose figures are then returned)."""

    name = "screen"

    def __init__(self, config: AccelConfig, images: int | None = None,
                 resilience: ResilienceSpec | None = None):
        cheap = resilience and replace(resilience, measure=False)
        self.fast = AcceleratorEvaluator(config, images, "estimate", cheap)
        self.exact = AcceleratorEvaluator(config, images, "rtl", resilience)
        proxy = OBJECTIVES["resilience_proxy"]
        self.objectives = SCREEN_OBJECTIVES + (((proxy.field, proxy.maximize),) if resilience
                                               else ())
        self.seen: list[Metrics] = []
        self.confirmed = 0

    def may_enter_front(self, m: Metrics) -> bool:
        def dominates(a: Metrics, b: Metrics) -> bool:
            pairs = [(getattr(a, f), getattr(b, f)) if up else (getattr(b, f), getattr(a, f))
                     for f, up in self.objectives]
            return all(x >= y for x, y in pairs) and any(x > y for x, y in pairs)
        return not any(dominates(other, m) for other in self.seen)

    def evaluate(self, model, data, progress=None) -> Metrics:
        m = self.fast.evaluate(model, data, progress)
        if self.may_enter_front(m):
            rtl = self.exact.evaluate(model, data, progress)
            if (rtl.cycles, rtl.accuracy) != (m.cycles, m.accuracy):
                raise CodesignError(f"the RTL disagrees with the estimate ({rtl.cycles} vs "
                                    f"{m.cycles} cycles, accuracy {rtl.accuracy} vs "
                                    f"{m.accuracy})")
            self.confirmed += 1
            m = rtl
        self.seen.append(m)
        return m


EVALUATORS = SEARCH


def get_evaluator(name: str, config: AccelConfig, images: int | None = None,
                  resilience: ResilienceSpec | None = None) -> Evaluator:
    """The evaluator of fidelity `name` (`EVALUATORS`) for accelerator `config`, scoring
    accuracy on `images` test images (all when None), with bit-flip resilience if asked."""
    if name not in EVALUATORS:
        raise CodesignError(f"unknown evaluator {name!r}; allowed: {', '.join(EVALUATORS)}")
    if name == "screen":
        return ScreeningEvaluator(config, images, resilience)
    return AcceleratorEvaluator(config, images, engine=name, resilience=resilience)
