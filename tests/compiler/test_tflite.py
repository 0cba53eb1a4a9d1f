"""int8 TFLite models nobody here wrote, judged by LiteRT's reference kernels: every layer's
int8 output and the model's output equal on the RTL; the official MLPerf Tiny models and random
graphs built with the flatbuffer schema; bad models refused in one line naming the op/tensor."""

from pathlib import Path

import numpy as np
import pytest

from compiler import artifacts
from compiler.errors import CompileError
from compiler.tflite import compile_tflite
from compiler.tflite.layers import average_multiplier
from compiler.tflite.litert import LiteRT, compare
from hw.config import load_accel_config
from tests.compiler.tflite_graphs import Graph, dequantized, quantized_io, random_graph

MODELS = Path(__file__).resolve().parents[2] / "models" / "mlperf-tiny"


def _inputs(net, n: int, seed: int) -> np.ndarray:
    """Random inputs and the two ends of the int8 range."""
    xs = net.random_inputs(n, seed)
    return np.concatenate([xs, np.full((1, *net.input_shape), -128, np.int8),
                           np.full((1, *net.input_shape), 127, np.int8)])


def _check(net, litert: LiteRT, xs, backend: str = "rtl"):
    with net.runner(backend) as run:
        for x in xs:
            y = run(x[None])
            theirs, tensors = litert.run(x)
            diff = compare(run.int_outputs, tensors, litert)
            assert diff is None, str(diff)
            np.testing.assert_array_equal(y.reshape(theirs.shape), theirs)
            if backend != "reference":
                assert run.cycles == sum(b.cycles for b in net.program.layers.values())


@pytest.mark.rtl
@pytest.mark.slow
@pytest.mark.parametrize("model", ["pretrainedResnet_quant", "kws_ref_model"])
def test_official_model_bit_exact_against_litert_on_the_rtl(model):
    path = MODELS / f"{model}.tflite"
    net = compile_tflite(path, load_accel_config("default"))
    assert [p.where for p in net.placement][:-1] == ["tta"] * (len(net.placement) - 1)
    assert net.placement[-1].op.startswith("dequantize+nn.softmax")  # the last host step
    assert len(net.program.segments) == 1, net.placement_report()
    _check(net, LiteRT(path), _inputs(net, 3, 0))


@pytest.mark.parametrize("model", [pytest.param("vww_96_int8", marks=pytest.mark.slow),
                                   "ad01_int8"])
def test_official_model_bit_exact_against_litert_in_the_reference(model):
    path = MODELS / f"{model}.tflite"
    net = compile_tflite(path, load_accel_config("default"))
    assert all(p.where == "tta" for p in net.placement if "softmax" not in p.op)
    _check(net, LiteRT(path), _inputs(net, 2, 1), "reference")


@pytest.mark.rtl
@pytest.mark.parametrize("seed", range(10))
def test_random_int8_graph_bit_exact_against_litert(tmp_path, seed):
    path = tmp_path / f"g{seed}.tflite"
    path.write_bytes(random_graph(seed))
    net = compile_tflite(path, load_accel_config("default"))
    host = [p.op for p in net.placement if p.where != "tta"]
    assert all("softmax" in op for op in host), host
    _check(net, LiteRT(path), _inputs(net, 2, seed))


def test_a_compiled_tflite_directory_round_trips(tmp_path):
    rng = np.random.default_rng(3)
    g = Graph(rng)
    x = g.input((1, 8, 8, 2), 0.03, 17)
    y = g.conv(x, 8, (3, 3), (1, 1), "SAME", "RELU6")
    z = g.add(y, g.conv(y, 8, (1, 1), (1, 1), "VALID"))
    out = g.softmax(g.fully_connected(g.reshape(z, (1, 8 * 8 * 8)), 4))
    path = tmp_path / "m.tflite"
    path.write_bytes(g.build([out]))
    net = compile_tflite(path, load_accel_config("default"))
    again = artifacts.load(artifacts.save(net, tmp_path / "c"))
    assert again.frontend == "tflite" and again.model_file == path.read_bytes()
    _check(again, LiteRT(tmp_path / "c" / artifacts.TFLITE_FILE), _inputs(net, 1, 0),
           "reference")


def test_average_pooling_divides_as_tflite_for_every_window_size():
    for n in (1, 2, 3, 4, 9, 25, 64, 75, 125, 144, 256, 1000):  # exhaustive inside each call
        assert 0 < average_multiplier(n) < 2**31


def _one_conv(tmp_path, activations=np.int8, weights=np.int8) -> Path:
    """A one-convolution model, its activations and weights then retyped."""
    g = Graph(np.random.default_rng(0))
    x = g.input((1, 6, 6, 2))
    out = g.conv(x, 4, (3, 3))
    for t in (g.tensors[x], g.tensors[out]):
        if activations != np.int8:
            t.dtype = activations
        if activations == np.float32:
            t.scale, t.zero_point = [], []
    if weights == np.float32:
        w = g.tensors[1]
        w.dtype, w.data, w.scale, w.zero_point = np.float32, w.data.astype(np.float32), [], []
    path = tmp_path / "m.tflite"
    path.write_bytes(g.build([out]))
    return path


@pytest.mark.parametrize("case, error", [
    ("float", r"CONV_2D #0 .*computes on float tensor 't0': a float model"),
    ("dynamic", r"CONV_2D #0 .*computes on float tensor 't0': dynamic-range quantization"),
    ("int16", r"CONV_2D #0 .*int16 activations \(tensor 't0'\)"),
    ("truncated", r"not a readable TFLite model|not a TFLite model"),
    ("text", r"not a TFLite model \(no 'TFL3'"),
])
def test_models_codesign_cannot_take_are_refused_by_name(tmp_path, case, error):
    if case in ("float", "dynamic"):
        path = _one_conv(tmp_path, np.float32, np.float32 if case == "float" else np.int8)
    elif case == "int16":
        path = _one_conv(tmp_path, np.int16)
    else:
        path = tmp_path / "m.tflite"
        data = _one_conv(tmp_path).read_bytes()
        path.write_bytes(data[:len(data) // 3] if case == "truncated" else b"model = 1\n" * 9)
    with pytest.raises(CompileError, match=error):
        compile_tflite(path, load_accel_config("default"))


@pytest.mark.rtl
def test_the_cli_compiles_runs_checks_and_writes_a_tflite_models_outputs(tmp_path):
    from tests.clirun import run
    path = tmp_path / "g.tflite"
    path.write_bytes(random_graph(3))
    out = run("compile", path, "-o", tmp_path / "c")
    assert out.returncode == 0, out.stderr
    assert "accelerator runs per inference: 1" in out.stdout
    x = np.random.default_rng(0).integers(-128, 128, (2, *LiteRT(path).input["shape"][1:]))
    np.save(tmp_path / "x.npy", x.astype(np.int8))
    out = run("run", tmp_path / "c", "--input", tmp_path / "x.npy", "--check",
              "--output", tmp_path / "y.npy")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "bit-exact against the integer reference and LiteRT's reference kernels" in out.stdout
    y = np.load(tmp_path / "y.npy")
    assert y.dtype == np.int8 and len(y) == 2
    np.testing.assert_array_equal(y[1].reshape(-1), LiteRT(path).run(x[1])[0].reshape(-1))
    refused = run("compile", path, "--quant", tmp_path / "q.yaml", "-o", tmp_path / "d")
    assert refused.returncode == 1 and "carries its own quantization" in refused.stderr
    floats = tmp_path / "f.npy"
    np.save(floats, x.astype(np.float32) / 3)
    wrong = run("run", tmp_path / "c", "--input", floats)
    assert wrong.returncode == 1 and "the model takes int8 values" in wrong.stderr


def test_faults_inject_into_a_tflite_model_through_its_softmax():
    """The batched fault engine computes a TFLite model's integer semantics (zero points,
    TFLite rounding, the host's int8 softmax): fault-free, it equals the host-graph runner
    (checked inside `trace`), and flips change decisions."""
    from codesign.resilience import FaultEngine, analyze
    net = compile_tflite(MODELS / "kws_ref_model.tflite", load_accel_config("default"))
    images = net.random_inputs(12, 5)
    FaultEngine(net).trace(images)
    result = analyze(net, images, None, [1e-3], ["weights"], "reference", 30, 0.05, 0.95,
                     None, 0)
    assert result["curves"]["weights"][0]["ccr"] > 0


@pytest.mark.rtl
def test_float_inputs_and_outputs_quantized_as_tflite_does(tmp_path):
    """QUANTIZE of a float input on the host rounds half away from zero in float32 (TVM's
    quantize rounds ties to even), DEQUANTIZE at the end: exact with LiteRT, ties included."""
    g = Graph(np.random.default_rng(4))
    x = g.input((1, 8, 8, 3), 0.05, 3)
    quantized_io(g, x, (1, 8, 8, 3))
    y = g.conv(x, 8, (3, 3), (1, 1), "SAME", "RELU")
    out = dequantized(g, g.fully_connected(g.reshape(y, (1, 512)), 5))
    path = tmp_path / "f.tflite"
    path.write_bytes(g.build([out]))
    net = compile_tflite(path, load_accel_config("default"))
    assert net.input_dtype == "float32"
    xs = net.random_inputs(6, 1) * 3
    xs[:, 0, 0, :] = (np.arange(3) + 0.5) * 0.05  # exact ties of the quantization steps
    xs[:, 0, 1, :] = -(np.arange(3) + 0.5) * 0.05
    _check(net, LiteRT(path), xs)


@pytest.mark.rtl
@pytest.mark.slow
def test_a_network_past_the_instruction_memory_loops_and_stays_exact(tmp_path):
    """A wider, deeper ResNet (32..256 channels; its 1.2 MB of weights past the data memory):
    unrolled, its code would not fit the instruction memory, so its streamed layers loop over
    their weight segments and chunks. Every tensor equals LiteRT's on the RTL, the estimate
    equals the RTL's cycles."""
    g = Graph(np.random.default_rng(2))
    y = g.conv(g.input((1, 32, 32, 3), 1.0, -128), 32, (3, 3), (1, 1), "SAME", "RELU")
    for c, s in ((32, 1), (64, 2), (128, 2), (256, 2)):
        a = g.conv(y, c, (3, 3), (s, s), "SAME", "RELU")
        b = g.conv(a, c, (3, 3), (1, 1), "SAME", "NONE")
        y = g.add(b, y if s == 1 else g.conv(y, c, (1, 1), (s, s), "SAME", "NONE"), "RELU")
    y = g.pool(y, "avg", g.tensors[y].shape[1:3], (1, 1))
    y = g.softmax(g.fully_connected(g.reshape(y, (1, 256)), 10))
    path = tmp_path / "deep.tflite"
    path.write_bytes(g.build([y]))
    config = load_accel_config("default")
    net = compile_tflite(path, config)
    assert sum(len(d) for _, d in net.program.offchip) > config.dmem_bytes
    assert len(net.program.program.words) <= config.imem_depth
    assert all(p.where == "tta" for p in net.placement if "softmax" not in p.op)
    _check(net, LiteRT(path), net.random_inputs(2, 3))
