"""The `codesign` command."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

from codesign import modes
from hw.errors import CodesignError

DEFAULT_DEMO = Path(__file__).parent / "configs" / "experiments" / "demo.yaml"


def _demo(args) -> None:
    from codesign.demo import run_demo
    from codesign.experiment import load_experiment
    from codesign.rundir import claim
    from compiler.artifacts import writable_dir

    exp = load_experiment(args.config)
    if args.trials is not None and args.trials < 1:
        raise SystemExit(f"error: --trials {args.trials}: give at least 1 trial")
    # the run directory says what it searched, so `codesign report` and `--resume` take it
    text = _resolved_config(args.config, args.trials)
    run_dir = writable_dir(claim(Path(args.run_dir or f"runs/{exp.name}-"
                                      f"{time.strftime('%Y%m%d-%H%M%S')}"), text), "--run-dir")
    (run_dir / "config.yaml").write_text(text)
    run_demo(exp, run_dir, args.trials)


def _accel_info(args) -> None:
    from hw.config import load_accel_config
    from hw.isa import Encoding

    c = load_accel_config(args.config)
    enc = Encoding(c)
    print(f"accelerator '{c.name}': {c.buses} buses, W = {c.vector_width} bits "
          f"({c.lanes} int8 lanes), {c.clock_mhz:g} MHz")
    print(f"  units: {', '.join(f'{n} (latency {c.latency(n)})' for n in c.unit_names)}")
    print(f"  instruction: {enc.width} bits = {c.buses} slots x {enc.slot_bits} "
          f"(guard {enc.guard_bits}, source {enc.src_bits}, destination {enc.dst_bits})")
    print(f"  memories: {c.imem_depth} instructions, {c.dmem_bytes} data bytes "
          f"({c.dmem_rows} rows)")
    print(f"  peak: {c.lanes} int8 MACs/cycle = "
          f"{2 * c.lanes * c.clock_mhz / 1e3:.1f} GOPS")


def _validate_accel(args) -> int:
    from hw.config import load_accel_config
    from hw.validate import report, validate

    if args.programs < 0:
        raise SystemExit(f"error: --programs {args.programs}: give 0 or more random programs")
    v = validate(load_accel_config(args.config), programs=args.programs, with_area=args.area,
                 progress=lambda m: print(f"  {m}", flush=True))
    print(report(v))
    for m in v.mismatches[:3]:
        print(f"mismatch on random program {m.seed} ({m.what}):\n{m.program}")
    return 0 if v.ok else 1


def _shape(text: str | None) -> tuple[int, ...] | None:
    if not text:
        return None
    try:
        return tuple(int(d) for d in text.split(","))
    except ValueError:
        raise SystemExit(f"error: --input-shape {text!r}: expected integers like 3,32,32")


def _compile_arg(args, config):
    """(compiled network, an input batch of its own kind) for the MODEL argument: a .tflite
    model with its own quantization, or a PyTorch model quantized by --quant and calibrated."""
    if args.model.endswith(".tflite"):
        given = [o for o, v in (("--quant", args.quant), ("--calibration", args.calibration),
                                ("--input-shape", args.input_shape)) if v]
        if given:
            raise SystemExit(f"error: {args.model}: a TFLite model carries its own quantization "
                             f"and shape; drop {', '.join(given)}")
        from compiler.tflite import compile_tflite
        net = compile_tflite(args.model, config)
        return net, net.random_inputs(1)
    import torch

    from compiler.pipeline import compile_model
    model, cal = _load_inputs(args)
    return compile_model(model, torch.from_numpy(cal[:1]), config, args.quant, cal), cal


def _compile(args) -> int:
    from compiler import artifacts
    from hw.config import load_accel_config

    config = load_accel_config(args.accel)
    artifacts.writable_dir(args.output, "output directory")  # before the work, not after
    start = time.perf_counter()
    net, _ = _compile_arg(args, config)
    seconds = time.perf_counter() - start
    out = artifacts.save(net, args.output)
    artifacts.load(out)  # what `codesign run` will check, checked before this exits 0
    print(net.placement_report())
    total = sum(b.cycles for b in net.program.layers.values())
    print(f"{len(net.layers)} accelerator layers, {len(net.program.program.words)} "
          f"instructions, {total} cycles expected per inference on '{config.name}'; "
          f"compiled in {seconds:.1f} s -> {out}")
    return 0


def _run(args) -> int:
    import numpy as np

    from compiler import artifacts

    net = artifacts.load(args.dir)
    tflite = net.frontend == "tflite"
    if args.input:
        xs = _npy(args.input, "--input", tuple(net.input_shape),
                  integer=net.input_dtype == "int8")
    else:
        if args.random < 1:
            raise SystemExit(f"error: --random {args.random}: give at least 1 input")
        xs = net.random_inputs(args.random, args.seed)
    if args.output:
        _writable_file(args.output, "--output")
    litert = None
    if args.check and tflite:
        from compiler.tflite.litert import LiteRT
        litert = LiteRT(Path(args.dir) / artifacts.TFLITE_FILE)
    rtl = net.runner("rtl")
    ref = net.runner("reference") if args.check else None
    outputs = []
    try:
        for i, x in enumerate(xs):
            y = rtl(x[None])
            outputs.append(y.reshape(y.shape[1:]) if y.shape[:1] == (1,) else y)
            print(f"input {i}: {rtl.cycles} cycles, output "
                  f"{np.array2string(y.ravel()[:8], precision=4)}"
                  f"{' ...' if y.size > 8 else ''}")
            if ref is not None and _mismatch(net, rtl, ref, x, y, i, litert):
                return 1
        if ref is not None:
            against = "the integer reference and LiteRT's reference kernels" if litert \
                else "the integer reference"
            print(f"check: {len(xs)} inputs bit-exact against {against}, every layer")
    finally:
        rtl.close()
        if ref is not None:
            ref.close()
    if args.output:
        np.save(args.output, np.stack(outputs))
        print(f"outputs ({len(outputs)}, {', '.join(map(str, outputs[0].shape))}) "
              f"{outputs[0].dtype} -> {args.output}")
    return 0


def _mismatch(net, rtl, ref, x, y, i: int, litert) -> bool:
    """Print the first layer where the RTL differs from the integer reference (or LiteRT);
    True if one does."""
    import numpy as np

    y_ref = ref(x[None])
    for layer in net.layers:
        a, b = rtl.int_outputs[layer.name], ref.int_outputs[layer.name]
        if not np.array_equal(a, b):
            idx = tuple(int(v) for v in np.argwhere(a != b)[0])
            print(f"MISMATCH input {i}, layer {layer.name}: RTL {a[idx]} vs reference "
                  f"{b[idx]} at {idx} ({int(np.sum(a != b))} of {a.size} differ)")
            return True
    if not np.array_equal(y, y_ref):
        print(f"MISMATCH input {i}: network outputs differ")
        return True
    if litert is not None:
        from compiler.tflite.litert import compare
        theirs, tensors = litert.run(x)
        diff = compare(rtl.int_outputs, tensors, litert)
        if diff is not None:
            print(f"MISMATCH input {i} against LiteRT: {diff}")
            return True
        if not np.array_equal(y.reshape(theirs.shape), theirs):
            print(f"MISMATCH input {i} against LiteRT: the model's outputs differ")
            return True
    return False


def _writable_file(path: str, option: str) -> None:
    """A file the command will write at the end: refused now (named) if it cannot be."""
    target = Path(path)
    if target.is_dir():
        raise SystemExit(f"error: {option} {path}: is a directory")
    if not target.parent.exists() or not os.access(target.parent, os.W_OK) or \
            (target.exists() and not os.access(target, os.W_OK)):
        raise SystemExit(f"error: {option} {path}: cannot write there")


def _npy(path: str, option: str, shape: tuple[int, ...], integer: bool = False):
    """A float batch [N, *shape] from an .npy file (integer: a TFLite model's int8, in its own
    layout), or a one-line error naming it: missing, not an array file, pickled objects,
    another layout (NHWC is not reshaped), NaN / inf, integers past int8."""
    import numpy as np

    try:
        x = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise SystemExit(f"error: {option} {path}: no such file") from None
    except (ValueError, OSError, EOFError) as exc:
        raise SystemExit(f"error: {option} {path}: not a numpy .npy array file ({exc})") from None
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise SystemExit(f"error: {option} {path}: dtype {x.dtype}, expected real numbers")
    if x.shape == shape:
        x = x[None]
    if x.ndim != len(shape) + 1 or x.shape[1:] != shape or not len(x):
        layout = "the model's own layout (a TFLite model's NHWC)" if integer \
            else "the model's (C, H, W) layout"
        raise SystemExit(f"error: {option} {path}: shape {x.shape}, expected (N, "
                         f"{', '.join(map(str, shape))}) in {layout}")
    if integer:
        if not np.issubdtype(x.dtype, np.integer) or x.min() < -128 or x.max() > 127:
            raise SystemExit(f"error: {option} {path}: the model takes int8 values; this holds "
                             f"{x.dtype} from {x.min()} to {x.max()}")
        return x.astype(np.int8)
    if not np.all(np.isfinite(x)):
        raise SystemExit(f"error: {option} {path}: holds NaN or infinite values "
                         f"(first at index {np.argwhere(~np.isfinite(x))[0].tolist()})")
    return x.astype(np.float32)


def _load_inputs(args):
    """(float model, calibration batch) from MODEL and the options."""
    import numpy as np

    from compiler import artifacts

    model, shape = artifacts.load_model(args.model, _shape(args.input_shape))
    if args.calibration:
        cal = _npy(args.calibration, "--calibration", shape)
    else:  # post-training quantization on random inputs: scales only, say so
        if args.calibrate < 1:
            raise SystemExit(f"error: --calibrate {args.calibrate}: give at least 1 input")
        cal = np.random.default_rng(0).standard_normal((args.calibrate, *shape)).astype(np.float32)
        print(f"calibrating activation scales on {args.calibrate} random N(0, 1) inputs "
              f"(give --calibration FILE.npy for real data)")
    return model, cal


def _evaluate(args) -> int:
    import dataclasses
    import json

    import torch

    from codesign.evalcache import EvalCache, cache_key, tflite_key
    from codesign.hwcost import bar_chart, network_cost, table
    from codesign.metrics import Metrics
    from compiler.quantspec import as_spec
    from compiler.pipeline import compile_model
    from hw.config import load_accel_config

    config = load_accel_config(args.accel)
    for option in ("json", "plot", "html"):  # before the work, not after
        if getattr(args, option):
            _writable_file(getattr(args, option), f"--{option}")
    start = time.perf_counter()
    if args.model.endswith(".tflite"):
        key = tflite_key(Path(args.model), config.to_dict(), args.fidelity)
        model = None
    else:
        model, cal = _load_inputs(args)
        spec = as_spec(args.quant)
        key = cache_key(model, dataclasses.asdict(spec), cal, config.to_dict(), args.fidelity)
    cache = None if args.no_cache else EvalCache(args.cache)
    hit = cache.get(key) if cache else None
    cost = None
    if hit:
        try:
            cost = Metrics.from_dict(hit)
            print(f"evaluation cache hit ({1e3 * (time.perf_counter() - start):.0f} ms, "
                  f"{cache.path})")
        except (TypeError, KeyError, ValueError) as exc:  # an entry of another shape
            print(f"warning: evaluation cache {cache.path}: entry of another shape ({exc}); "
                  f"evaluating anew", file=sys.stderr)
    if cost is None:
        if model is None:
            net, x = _compile_arg(args, config)
        else:
            net = compile_model(model, torch.from_numpy(cal[:1]), config, spec, cal)
            x = cal[:1]
        cost = network_cost(net, args.fidelity, x)
        if cache:
            cache.put(key, cost.as_dict())
        print(f"evaluated in {time.perf_counter() - start:.1f} s")
    if cache:
        cache.close()
    print(table(cost))
    plot = Path(args.plot or (Path(args.json).with_suffix(".png") if args.json
                              else "evaluation.png"))
    bar_chart(cost, plot)
    print(f"per-layer chart: {plot}")
    if args.json:
        Path(args.json).write_text(json.dumps(cost.as_dict(), indent=2))
        print(f"figures: {args.json}")
    if args.html:
        from codesign.html_report import evaluation_page
        print(f"interactive page: {evaluation_page(cost, Path(args.html))}")
    return 0


def _floats(text: str, option: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise SystemExit(f"error: {option} {text!r}: expected numbers like 1e-6,1e-5") from None
    if not values:
        raise SystemExit(f"error: {option}: give at least one value")
    return values


def _model_on_dataset(args, config):
    """(model, its quantization spec, the data set, a compiler of the model or a variant of it)
    for MODEL: a search's trialN.pt (its own bit widths and trained scales) or
    path/file.py:Name with --quant, calibrated on the data set's training images."""
    import numpy as np
    import torch

    from codesign.data import get_dataset
    from codesign.evaluate import CALIBRATION_IMAGES, compile_quantnet
    from compiler.pipeline import compile_model
    from compiler.quantspec import as_spec

    if not args.dataset:
        raise SystemExit("error: give the data set the model was trained on: --dataset NAME")
    data = get_dataset(args.dataset, args.data_dir)
    cal = data.x_train[:CALIBRATION_IMAGES]
    if args.model.endswith(".pt"):  # a model a search trained (runs/<name>/models/trialN.pt)
        from codesign.search import load_model
        try:
            model = load_model(Path(args.model), data.classes)
        except (OSError, RuntimeError, KeyError, TypeError, ValueError) as exc:
            first = str(exc).strip().splitlines()
            raise SystemExit(f"error: {args.model}: not a model a search saved for "
                             f"{args.dataset} ({first[0] if first else type(exc).__name__})")
        if tuple(model.input_shape) != tuple(data.x_train.shape[1:]):
            raise SystemExit(f"error: {args.model}: takes inputs of {tuple(model.input_shape)}; "
                             f"data set {args.dataset} has {tuple(data.x_train.shape[1:])} "
                             f"(give the data set it was trained on)")
        return model, model.quant_spec(), data, lambda m: compile_quantnet(m, config, cal)
    from compiler import artifacts
    model, _ = artifacts.load_model(args.model, _shape(args.input_shape))
    spec = as_spec(args.quant)
    example = torch.from_numpy(np.asarray(cal[:1], np.float32))
    return model, spec, data, lambda m: compile_model(m, example, config, spec, cal)


def _labels(path: str | None, n: int):
    """n integer class labels from an .npy file, or None without one; one line naming it when
    they are not n integers."""
    import numpy as np

    if not path:
        return None
    try:
        labels = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise SystemExit(f"error: --labels {path}: not a numpy .npy array file ({exc})") from None
    if labels.ndim != 1 or len(labels) < n or not np.issubdtype(labels.dtype, np.integer):
        raise SystemExit(f"error: --labels {path}: shape {labels.shape} {labels.dtype}; "
                         f"expected {n} integer class labels, one per input")
    return labels[:n]


def _resilience(args) -> int:
    import json

    import numpy as np
    import torch

    from codesign.faults import SITES
    from codesign.resilience import analyze, plot
    from compiler.pipeline import compile_model
    from hw.config import load_accel_config

    bers = _floats(args.ber, "--ber")
    bad = [b for b in bers if not 0 < b < 1]
    if bad:
        raise SystemExit(f"error: --ber {bad[0]:g}: a bit-error rate is in (0, 1)")
    sites = [s.strip() for s in args.sites.split(",") if s.strip()]
    bad = [s for s in sites if s not in SITES]
    if bad or not sites:
        raise SystemExit(f"error: --sites {args.sites!r}: choose from {', '.join(SITES)}")
    if args.images < 1:
        raise SystemExit(f"error: --images {args.images}: give at least 1")
    if args.injections is not None and args.injections < 1:
        raise SystemExit(f"error: --injections {args.injections}: give at least 1 per point")
    for option, value in (("--confidence", args.confidence), ("--margin", args.margin)):
        if not 0 < value < 1:
            raise SystemExit(f"error: {option} {value:g}: must lie strictly between 0 and 1")
    if args.layer_ber is not None and not 0 < args.layer_ber < 1:
        raise SystemExit(f"error: --layer-ber {args.layer_ber:g}: a bit-error rate is in (0, 1)")
    config = load_accel_config(args.accel)
    labels = None
    if args.model.endswith(".pt") or args.dataset:
        model, spec, data, compile_one = _model_on_dataset(args, config)
        images, labels = data.x_test[:args.images], data.y_test[:args.images]
        net = compile_one(model)
    elif args.model.endswith(".tflite"):  # its own quantization; inputs in its own layout
        from compiler.tflite import compile_tflite
        if args.quant or args.calibration:
            raise SystemExit(f"error: {args.model}: a TFLite model carries its own "
                             f"quantization; drop --quant / --calibration")
        net = compile_tflite(args.model, config)
        if not args.inputs:
            raise SystemExit("error: give the inputs faults run on: --inputs FILE.npy (int8, "
                             "the model's own layout)")
        images = _npy(args.inputs, "--inputs", net.input_shape,
                      integer=net.input_dtype == "int8")[:args.images]
        labels = _labels(args.labels, len(images))
    else:
        from compiler import artifacts
        model, shape = artifacts.load_model(args.model, _shape(args.input_shape))
        if args.inputs:
            images = _npy(args.inputs, "--inputs", shape)[:args.images]
            labels = _labels(args.labels, len(images))
            cal = _npy(args.calibration, "--calibration", shape) if args.calibration \
                else images[:64]
        else:
            raise SystemExit("error: give the inputs faults run on: --dataset NAME or "
                             "--inputs FILE.npy")
        net = compile_model(model, torch.from_numpy(np.asarray(cal[:1], np.float32)), config,
                            args.quant, cal)
    print(f"{len(net.layers)} accelerator layers on '{config.name}'; {len(images)} inputs; "
          f"engine {args.engine}")
    if args.stuck_at is not None:
        from codesign.resilience import stuck_at
        try:
            faults = [tuple(int(v) for v in f.split(":")) for f in args.stuck_at.split(",")]
            assert faults and all(len(f) == 3 for f in faults)
        except (ValueError, AssertionError):
            raise SystemExit(f"error: --stuck-at {args.stuck_at!r}: expected LANE:BIT:VALUE,..."
                             f" such as 0:30:1,5:31:0") from None
        result = {"model": args.model, "accelerator": config.name,
                  "stuck_at": stuck_at(net, images, faults)}
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=1))
            print(f"figures: {args.json}")
        return 0
    result = analyze(net, images, labels, bers, sites, args.engine, args.injections,
                     args.margin, args.confidence, args.layer_ber, args.seed)
    result |= {"model": args.model, "accelerator": config.name}
    if result["most_sensitive_layer"]:
        print(f"most sensitive layer at BER {result['layer_ber']:g}: "
              f"{result['most_sensitive_layer']}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
        print(f"figures: {args.json}")
    if args.plot:
        plot(result, args.plot)
        print(f"CCR against BER: {args.plot}")
    return 0


def _ensemble(args) -> int:
    import json

    import numpy as np
    import torch

    from codesign.ensemble import accuracy_by_size, compile_members, member_cost, member_logits
    from hw.config import load_accel_config

    if args.members < 1 or args.images < 1:
        raise SystemExit(f"error: --members {args.members} / --images {args.images}: give at "
                         f"least 1 of each")
    config = load_accel_config(args.accel)
    model, spec, data, compile_one = _model_on_dataset(args, config)
    images, labels = data.x_test[:args.images], data.y_test[:args.images]
    start = time.perf_counter()
    try:
        members = compile_members(model, spec, args.members, args.seed, compile_one, print)
    except ValueError as exc:
        raise SystemExit(f"error: {args.model}: {exc}")
    single = compile_one(model)  # the deterministic (sign / threshold) network
    logits = member_logits(members, images)
    sizes = sorted({k for k in (1, 2, 4, 8, 16, 32, 64) if k < args.members} | {args.members})
    acc = accuracy_by_size(logits, labels, sizes)
    base = float(np.mean(np.argmax(member_logits([single], images)[0], axis=1) == labels))
    with torch.no_grad(), getattr(model, "float_view", lambda: _same(model))() as f:
        float_acc = float((f(torch.from_numpy(images)).argmax(1).numpy() == labels).mean())
    cost = member_cost(members, images[:1], args.engine)
    rows = [f"{len(members)} members of {args.model} on '{config.name}' ({args.engine}, "
            f"{time.perf_counter() - start:.0f} s); accuracy on {len(images)} test images "
            f"(integer semantics): float model {float_acc:.4f}, deterministic rounding "
            f"{base:.4f}",
            f"{'members':>7} {'accuracy':>8} {'cycles':>10} {'energy uJ':>9} {'saved':>9}"]
    result = {"model": args.model, "accelerator": config.name, "engine": args.engine,
              "seed": args.seed, "images": len(images), "float_accuracy": float_acc,
              "deterministic_accuracy": base, "bit_exact": cost.bit_exact, "sizes": []}
    for k in sizes:
        cycles, saved = sum(cost.cycles[:k]), sum(cost.saved_cycles[:k])
        energy = sum(cost.energy_j[:k])
        rows.append(f"{k:>7} {acc[k]:>8.4f} {cycles:>10} {energy * 1e6:>9.3f} {saved:>9}")
        result["sizes"].append({"members": k, "accuracy": acc[k], "cycles": cycles,
                                "energy_j": energy, "saved_cycles": saved,
                                "cycles_unshared": cycles + saved})
    rows.append(f"members' logits equal the integer reference's on the {args.engine}: "
                f"{cost.bit_exact}; 'saved': cycles of layers shared with an earlier member")
    print("\n".join(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
        print(f"figures: {args.json}")
    return 0 if cost.bit_exact else 1


@contextlib.contextmanager
def _same(model):
    yield model.eval()


def _resolved_config(path: str, trials: int | None = None) -> str:
    """An experiment YAML as a run directory keeps it: a search space given by name written
    inline (the directory alone says, and resumes, what was searched), trials overridden."""
    import yaml

    from codesign.space import space_path
    data = yaml.safe_load(Path(path).read_text())
    search = data["search"]
    if isinstance(search.get("space"), str):
        search["space"] = yaml.safe_load(space_path(search["space"]).read_text())
    if trials is not None:
        search["trials"] = trials
    return f"# resolved from {path}\n" + yaml.safe_dump(data, sort_keys=False)


def _search_worker(config: str, run_dir: str, storage: str | None, worker: int,
                   parent: int | None = None) -> None:
    if parent is not None:  # first: the imports below take seconds
        _stop_with_parent(parent)
    try:
        from codesign.data import get_dataset
        from codesign.experiment import load_experiment
        from codesign.search import run_search

        exp = load_experiment(config)
        data = get_dataset(exp.dataset)
        run_search(exp, data, Path(run_dir), storage=storage, total=True, worker=worker,
                   progress=lambda m: print(f"[worker {worker}] {m}", flush=True))
    except KeyboardInterrupt:  # its trial is recorded as failed; the study keeps the rest
        raise SystemExit(130) from None


def _stop_with_parent(parent: int, poll_s: float = 1.0, grace_s: float = 5.0) -> None:
    """A worker process ends (its trial recorded as interrupted, like Ctrl-C) when the search
    that started it is killed, rather than running on with nobody to write the report. The
    interrupt reaches Python only between bytecodes: a worker still inside a long native call
    (a training step, a simulation) after `grace_s` exits at once, and the next --resume fails
    its orphaned trial. `parent` is the search's pid, passed along: a worker still starting
    when the search is killed already has another parent."""
    import _thread
    import threading

    def stopping():
        print(f"worker {os.getpid()}: the search that started it ended; stopping "
              f"(--resume continues)", file=sys.stderr, flush=True)

    if os.getppid() != parent:  # killed while this worker started: nothing begun
        stopping()
        os._exit(130)

    def watch():
        while os.getppid() == parent:
            time.sleep(poll_s)
        stopping()
        _thread.interrupt_main()
        time.sleep(grace_s)
        os._exit(130)

    threading.Thread(target=watch, daemon=True).start()


def _search(args) -> int:
    import multiprocessing

    import yaml

    from codesign.experiment import load_experiment
    from codesign.report import write_report
    from codesign.rundir import claim, refuse_links
    from codesign.search import SearchStalled, score_front, trials_table
    from codesign.study import fail_orphaned_trials, open_storage, open_study
    from compiler.artifacts import writable_dir

    from codesign.blockwise import is_segmentation
    given = str(Path(args.resume) / "config.yaml") if args.resume else args.config
    if is_segmentation(given):
        return _segmentation(args, given)
    # Checked before anything is written: a bad value must not spoil a run directory.
    if args.trials is not None and args.trials < 1:
        raise SystemExit(f"error: --trials {args.trials}: give at least 1 completed trial")
    if args.workers < 1:
        raise SystemExit(f"error: --workers {args.workers}: give at least 1 process")
    if args.storage:
        open_storage(Path("."), args.storage)  # a bad URL fails before a run directory exists
    if args.resume:
        run_dir = Path(args.resume)
        if not (run_dir / "config.yaml").is_file():
            raise SystemExit(f"error: {run_dir}: not a search run directory (no config.yaml)")
        refuse_links(run_dir)
        config = str(run_dir / "config.yaml")
        exp = load_experiment(config)
    else:
        exp = load_experiment(args.config)
        text = _resolved_config(args.config, args.trials)
        run_dir = claim(Path(args.run_dir or f"runs/{exp.name}-search-"
                             f"{time.strftime('%Y%m%d-%H%M%S')}"), text, args.force)
        run_dir = writable_dir(run_dir, "--run-dir")
        (run_dir / "config.yaml").write_text(text)
        config = str(run_dir / "config.yaml")
        exp = load_experiment(config)
    if args.trials is not None and args.resume:
        data = yaml.safe_load(Path(config).read_text())
        data["search"]["trials"] = args.trials
        (run_dir / "config.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
        exp = load_experiment(config)
    print(f"search {exp.name}: {exp.search.trials} trials, {exp.search.sampler}, objectives "
          f"{list(exp.search.objectives)}, {args.workers} worker(s); run directory {run_dir}")
    open_study(exp, run_dir, args.storage)
    status = 0
    if args.workers == 1:
        try:
            _search_worker(config, str(run_dir), args.storage, 0)
        except SearchStalled as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = 1
    else:
        ctx = multiprocessing.get_context("spawn")
        procs = [ctx.Process(target=_search_worker,
                             args=(config, str(run_dir), args.storage, w, os.getpid()))
                 for w in range(args.workers)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        failed = [w for w, p in enumerate(procs) if p.exitcode]
        if failed:
            print(f"error: worker(s) {', '.join(map(str, failed))} failed (exit codes "
                  f"{', '.join(str(procs[w].exitcode) for w in failed)}); finished trials are in "
                  f"the study (--resume continues)", file=sys.stderr)
            status = 1
    import optuna
    study = optuna.load_study(study_name=exp.name, storage=open_storage(run_dir, args.storage))
    fail_orphaned_trials(study)  # a worker that died mid-trial leaves nothing RUNNING
    from codesign.data import get_dataset
    score_front(exp, get_dataset(exp.dataset), run_dir, study)
    print(trials_table(study))
    print(f"report: {write_report(study, run_dir, exp.search.objectives)}")
    return status


def _segmentation(args, config: str) -> int:
    """A block-wise segmentation search (`task: segmentation`): every phase resumes from what
    its run directory holds."""
    from codesign.blockwise import load_segmentation, run
    from compiler.artifacts import writable_dir

    exp = load_segmentation(config)
    if args.resume:
        run_dir = Path(args.resume)
    else:
        run_dir = writable_dir(args.run_dir or f"runs/{exp.name}-"
                               f"{time.strftime('%Y%m%d-%H%M%S')}", "--run-dir")
        if (run_dir / "config.yaml").is_file() and \
                (run_dir / "config.yaml").read_text() != Path(config).read_text():
            raise SystemExit(f"error: {run_dir} holds another experiment's config.yaml; "
                             f"give a new --run-dir (or --resume it)")
        (run_dir / "config.yaml").write_text(Path(config).read_text())
    print(f"block-wise segmentation search {exp.name}; run directory {run_dir}")
    summary = run(exp, run_dir, lambda m: print(m, flush=True))
    for key in ("smaller", "faster"):
        if key in summary:
            figure = summary["size_reduction" if key == "smaller" else "cycle_reduction"]
            print(f"{key}: {summary[key]} ({figure:.1%})")
    return 0


def _stored_study(run_dir: Path, storage: str | None):
    """A finished or running search's experiment and study, never a new empty one."""
    import optuna

    from codesign.experiment import load_experiment
    from codesign.study import open_storage

    if not (run_dir / "config.yaml").is_file():
        raise CodesignError(f"{run_dir}: not a search run directory (no config.yaml)")
    if storage is None and not (run_dir / "study.db").is_file():
        raise CodesignError(f"{run_dir}: no study.db (give --storage if the search used a "
                            f"database server)")
    exp = load_experiment(run_dir / "config.yaml")
    try:
        study = optuna.load_study(study_name=exp.name, storage=open_storage(run_dir, storage))
    except KeyError:
        raise CodesignError(f"{storage or run_dir / 'study.db'}: holds no study "
                            f"{exp.name!r}") from None
    return exp, study


def _report(args) -> int:
    from codesign.report import write_report

    from codesign.rundir import refuse_links

    run_dir = Path(args.run_dir)
    exp, study = _stored_study(run_dir, args.storage)
    refuse_links(run_dir)
    print(f"report: {write_report(study, run_dir, exp.search.objectives)}")
    return 0


def _dashboard(args) -> int:
    import optuna_dashboard

    from codesign.study import open_storage

    if not 1 <= args.port <= 65535:
        raise SystemExit(f"error: --port {args.port}: a TCP port is 1..65535")

    if args.run_dir:
        _, study = _stored_study(Path(args.run_dir), args.storage)
        storage = study._storage
    elif args.storage:
        storage = open_storage(Path("."), args.storage)
    else:
        raise CodesignError("dashboard: give a run directory or --storage URL")
    print(f"optuna-dashboard: http://{args.host}:{args.port}/ (Ctrl-C stops it)", flush=True)
    try:
        optuna_dashboard.run_server(storage, host=args.host, port=args.port)
    except OSError as exc:
        raise CodesignError(f"dashboard: cannot serve on {args.host}:{args.port} "
                            f"({exc.strerror or exc})") from None
    except KeyboardInterrupt:
        pass
    return 0


def _fidelity(args) -> int:
    from codesign.fidelity import report, summary_table

    configs = args.configs.split(",") if args.configs else None
    result = report(args.random, configs, Path(args.out))
    print(summary_table(result))
    print(f"table and scatter plot: {args.out}/fidelity.json, {args.out}/fidelity.png")
    s = result["summary"]
    return 0 if s["max_cycle_error"] <= 0.02 and s["max_layer_cycle_error"] <= 0.05 else 1


def _model_options(p) -> None:
    p.add_argument("model", help="path/to/file.py:Name, file.pt2, or an int8 file.tflite")
    p.add_argument("--accel", default="default", help="accelerator config name or YAML")
    p.add_argument("--quant", help="quantization spec YAML (default: all 8-bit)")
    p.add_argument("--input-shape", help="C,H,W when the model does not say")
    p.add_argument("--calibration", help=".npy batch of inputs for activation scales")
    p.add_argument("--calibrate", type=int, default=16,
                   help="random inputs for activation scales without --calibration")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="codesign", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="train, compile, run on the RTL, then a short search")
    p.add_argument("--config", default=str(DEFAULT_DEMO), help="experiment YAML")
    p.add_argument("--run-dir", help="where results go (default runs/<name>-<time>)")
    p.add_argument("--trials", type=int, help="override the number of search trials")
    p.set_defaults(func=_demo)
    p = sub.add_parser("accel-info", help="validate an accelerator config and describe it")
    p.add_argument("config", help="a name under configs/accel/ or a YAML path")
    p.set_defaults(func=_accel_info)
    p = sub.add_parser("validate-accel", help="build, lint, test and measure an accelerator")
    p.add_argument("config", help="a name under configs/accel/ or a YAML path")
    p.add_argument("--programs", type=int, default=200, help="random programs to compare")
    p.add_argument("--area", action="store_true", help="synthesize the area if not cached")
    p.set_defaults(func=_validate_accel)
    p = sub.add_parser("compile", help="compile a PyTorch or int8 TFLite model for an accelerator")
    _model_options(p)
    p.add_argument("-o", "--output", required=True, help="output directory")
    p.set_defaults(func=_compile)
    p = sub.add_parser("run", help="run a compiled directory on the RTL")
    p.add_argument("dir", help="output directory of `codesign compile`")
    p.add_argument("--input", help=".npy of inputs (one, or a batch)")
    p.add_argument("--random", type=int, default=1, help="random inputs without --input")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", help="write the outputs here (.npy, the model's dtype and "
                                    "layout)")
    p.add_argument("--check", action="store_true",
                   help="compare every layer with the integer reference (a TFLite model: and "
                        "LiteRT's reference kernels); exit 1 on a mismatch")
    p.set_defaults(func=_run)
    p = sub.add_parser("evaluate", help="per-layer cycles, latency, energy of a model")
    _model_options(p)
    p.add_argument("--fidelity", choices=modes.EVALUATE, default="rtl",
                   help=modes.describe(modes.EVALUATE))
    p.add_argument("--json", help="write the figures here")
    p.add_argument("--plot", help="per-layer bar chart PNG (default: next to --json)")
    p.add_argument("--html", help="interactive per-layer page (self-contained HTML)")
    p.add_argument("--no-cache", action="store_true", help="bypass the evaluation cache")
    p.add_argument("--cache", help="cache database (default ~/.cache/codesign/evaluations.sqlite)")
    p.set_defaults(func=_evaluate)
    p = sub.add_parser("resilience", help="bit-flip fault injection: CCR against BER")
    p.add_argument("model", help="path/to/file.py:Name, file.pt2, or a search's trialN.pt")
    p.add_argument("--accel", default="default", help="accelerator config name or YAML")
    p.add_argument("--quant", help="quantization spec YAML (default: all 8-bit)")
    p.add_argument("--input-shape", help="C,H,W when the model does not say")
    p.add_argument("--dataset", help="test images (and labels) of: digits, fashion-mnist, "
                                     "cifar10")
    p.add_argument("--data-dir", help="the data set's directory, if not the default")
    p.add_argument("--inputs", help=".npy of inputs the faults run on (instead of --dataset)")
    p.add_argument("--labels", help=".npy of their labels (gives accuracy under faults)")
    p.add_argument("--calibration", help=".npy batch of inputs for activation scales")
    p.add_argument("--images", type=int, default=500, help="inputs used (default 500)")
    p.add_argument("--ber", default="1e-7,1e-6,1e-5,1e-4,1e-3", help="bit-error rates")
    p.add_argument("--sites", default="weights,params,activations,accumulators",
                   help="fault sites, comma-separated")
    p.add_argument("--engine", choices=modes.RESILIENCE, default="reference",
                   help="numpy integer reference (vectorised) or injection on the RTL")
    p.add_argument("--margin", type=float, default=0.01,
                   help="margin of error that sets the injections per point (Leveugle)")
    p.add_argument("--confidence", type=float, default=0.95)
    p.add_argument("--injections", type=int, help="per point (overrides --margin)")
    p.add_argument("--layer-ber", type=float, help="BER of the per-layer sweep (default: the "
                                                   "middle one)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stuck-at", help="permanent faults on the RTL's fault-injection build "
                                      "instead: LANE:BIT:VALUE,... (accumulator registers)")
    p.add_argument("--json", help="write the figures here")
    p.add_argument("--plot", help="CCR against BER (PNG)")
    p.set_defaults(func=_resilience)

    p = sub.add_parser("ensemble", help="stochastic bitwise ensemble: accuracy and cost per size")
    p.add_argument("model", help="a search's trialN.pt, or path/file.py:Name with --quant")
    p.add_argument("--accel", default="default", help="accelerator config name or YAML")
    p.add_argument("--quant", help="quantization spec YAML (file.py models)")
    p.add_argument("--input-shape", help="C,H,W when the model does not say")
    p.add_argument("--dataset", help="the data set the model was trained on")
    p.add_argument("--data-dir", help="the data set's directory, if not the default")
    p.add_argument("--members", type=int, default=8, help="members sampled (default 8)")
    p.add_argument("--images", type=int, default=1000, help="test images (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the members' LFSRs")
    p.add_argument("--engine", choices=("rtl", "golden"), default="rtl",
                   help="where the members' cycles and energy are measured")
    p.add_argument("--json", help="write the figures here")
    p.set_defaults(func=_ensemble)

    p = sub.add_parser("search", help="multi-objective mixed-precision search (Optuna)")
    p.add_argument("config", nargs="?", default=str(DEFAULT_DEMO), help="experiment YAML")
    p.add_argument("--run-dir", help="where results go (default runs/<name>-search-<time>)")
    p.add_argument("--storage", help="database URL shared by several machines (default: SQLite "
                                     "in the run directory)")
    p.add_argument("--workers", type=int, default=1, help="processes sharing the study")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the search in RUN_DIR")
    p.add_argument("--trials", type=int, help="completed trials wanted (overrides the config)")
    p.add_argument("--force", action="store_true", help="a --run-dir holding another search: "
                                                        "run in a new subdirectory of it")
    p.set_defaults(func=_search)
    p = sub.add_parser("report", help="regenerate a search run's report from its study")
    p.add_argument("run_dir")
    p.add_argument("--storage", help="the database URL the search used, if not SQLite")
    p.set_defaults(func=_report)
    p = sub.add_parser("dashboard", help="serve a search's study with optuna-dashboard")
    p.add_argument("run_dir", nargs="?", help="a search's run directory")
    p.add_argument("--storage", help="the study's database URL (instead of, or besides, RUN_DIR)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.set_defaults(func=_dashboard)

    p = sub.add_parser("fidelity", help="estimator vs RTL over the zoo and random candidates")
    p.add_argument("--random", type=int, default=30, help="random candidates")
    p.add_argument("--configs", help="comma-separated accelerator configs (default: all shipped)")
    p.add_argument("--out", default="bench/results/fidelity", help="output directory")
    p.set_defaults(func=_fidelity)
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except CodesignError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file the command writes: read-only directory, full disk
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
