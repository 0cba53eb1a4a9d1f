"""What the network-level tests check alike: every layer's integer output on a backend equals
the integer reference's, and the quantized network tracks the float model."""

import numpy as np


def every_layer_exact(net, backend: str, xs: np.ndarray):
    """Run each input (a batch of one each) on `backend` and the reference: the outputs and
    every layer's integers equal. Returns the backend's runner stats of the last input (cycles)
    and the reference outputs."""
    outputs = []
    with net.runner(backend) as run, net.runner("reference") as ref:
        for x in xs:
            y = ref(x[None])
            np.testing.assert_array_equal(run(x[None]), y)
            for name, q in ref.int_outputs.items():
                np.testing.assert_array_equal(run.int_outputs[name], q, err_msg=name)
            outputs.append(y)
        cycles = run.cycles
    return cycles, outputs


def tracks_float(net, model, x) -> None:
    """The reference's output is within 10% of the float model's range (+0.02) on x."""
    with net.runner("reference") as ref:
        y = ref(x.numpy())
    want = model(x).detach().numpy()
    assert np.abs(y - want).max() < 0.1 * np.abs(want).max() + 0.02
