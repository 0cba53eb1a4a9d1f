"""`codesign demo`: the thinnest real path through everything, on the embedded digits.

Train a small int8 CNN with fake quantization, compile it through TVM to the TTA, run the test
split on the Verilated RTL (checked bit for bit against the integer reference on a few images),
print accuracy, cycles, latency and energy, then run a short Optuna search.
"""

from __future__ import annotations

import json
from dataclasses import replace
import time
from pathlib import Path

import numpy as np

from codesign.data import get_dataset
from codesign.evaluate import compile_quantnet, get_evaluator
from codesign.experiment import ExperimentConfig
from codesign.models import build_model
from codesign.report import write_report
from codesign.search import run_search, summary, trials_table
from codesign.train import accuracy, train
from hw.build import build_core
from hw.config import load_accel_config

CHECK_IMAGES = 20


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run_demo(exp: ExperimentConfig, run_dir: Path, trials: int | None = None) -> dict:
    start = time.time()
    run_dir.mkdir(parents=True, exist_ok=True)
    accel = load_accel_config(exp.accelerator)
    data = get_dataset(exp.dataset)
    log(f"data: {exp.dataset}, {len(data.x_train)} train / {len(data.x_test)} test images "
        f"of {data.input_shape}")
    log(f"accelerator '{accel.name}': {accel.buses} buses, {accel.vector_width}-bit datapath "
        f"({accel.lanes} int8 MAC lanes), {accel.clock_mhz:g} MHz")
    build_core(accel)

    log(f"training {exp.model} for {exp.train.epochs} epochs with fake quantization")
    model = train(build_model(exp.model, data.input_shape, data.classes, exp.seed), data,
                  exp.train, progress=lambda m: log("  " + m))

    log("compiling: torch.export -> TVM Relax -> pattern partition -> TTA program")
    net = compile_quantnet(model, accel)
    print(net.placement_report())
    for b in net.program.layers.values():
        print(f"  layer {b.layer.name:<9} entry {b.entry:>6}  {b.cycles:>6} cycles")

    log(f"checking the RTL against the numpy integer reference on {CHECK_IMAGES} test images")
    with net.runner("rtl") as rtl, net.runner("reference") as ref:
        for i in range(CHECK_IMAGES):
            x = data.x_test[i:i + 1]
            if not np.array_equal(rtl(x), ref(x)):
                raise SystemExit(f"RTL and integer reference differ on test image {i}")
    log("  bit-exact on every layer output and the logits")

    log("running the test split on the RTL")
    metrics = get_evaluator("rtl", accel, exp.eval_images).evaluate(
        model, data, progress=lambda m: log("  " + m))
    print(f"  accuracy on the RTL      {metrics.accuracy:.4f} ({metrics.images} images; "
          f"fake-quant torch model: {accuracy(model, data):.4f})")
    print(f"  cycles per inference     {metrics.cycles}")
    print(f"  latency                  {metrics.latency_s * 1e6:.2f} us at {accel.clock_mhz:g} MHz")
    print(f"  energy per inference     {metrics.energy_j * 1e9:.2f} nJ (energy model over the "
          f"event counters)")
    print(f"  model size               {metrics.size_bits} bits")
    print(f"  simulation speed         {metrics.sim_cycles_per_s / 1e6:.2f} M cycles/s "
          f"(whole stack, per image)")

    n = trials or exp.search.trials
    log(f"search: {n} trials, {exp.search.sampler}, objectives {list(exp.search.objectives)}")
    search_exp = replace(exp, search=replace(exp.search, trials=n))
    evaluator = get_evaluator(exp.search.fidelity, accel, exp.search.eval_images)
    study = run_search(search_exp, data, run_dir, progress=lambda m: log("  " + m),
                       evaluator=evaluator)
    print(trials_table(study))
    if hasattr(evaluator, "confirmed"):
        log(f"screening: {evaluator.confirmed} of {len(evaluator.seen)} candidates could enter "
            f"the Pareto front and were confirmed on the RTL; the rest were estimated")
    write_report(study, run_dir, exp.search.objectives)
    result = {"model": summary(metrics), "metrics": metrics.as_dict(),
              "seconds": time.time() - start, "run_dir": str(run_dir)}
    (run_dir / "demo.json").write_text(json.dumps(result, indent=2))
    log(f"done in {time.time() - start:.0f} s; results in {run_dir}")
    return result
