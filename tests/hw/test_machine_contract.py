"""What every `Machine` must do, run against each engine (the way Optuna tests every storage
with one suite): a new engine passes these before anything else uses it."""

import numpy as np
import pytest

from hw.asm import assemble
from hw.errors import SimulationError
from hw.machine import Machine, get_machine

pytestmark = pytest.mark.rtl


@pytest.fixture(params=["golden", "rtl", "rtl-fault"])
def machine(request, tiny, rtl_tiny) -> Machine:
    if request.param == "rtl":
        return rtl_tiny  # the session's build
    return get_machine(request.param, tiny)


def test_memories_read_back_what_was_written(machine):
    machine.write_dmem(3, b"\x01\x02\x03")
    machine.write_offchip(17, np.array([9, 8], np.uint8))
    assert machine.read_dmem(3, 3).tolist() == [1, 2, 3]
    assert machine.read_offchip(17, 2).tolist() == [9, 8]
    for access in (lambda: machine.read_dmem(machine.config.dmem_bytes - 1, 2),
                   lambda: machine.write_dmem(-1, b"\x00"),
                   lambda: machine.read_offchip(machine.config.offchip.bytes, 1)):
        with pytest.raises(SimulationError, match="outside"):
            access()


def test_reset_keeps_memories_and_set_pc_starts_elsewhere(machine):
    text = "5 -> r1, 0 -> ctrl.halt\n7 -> r1, 0 -> ctrl.halt\n"
    machine.write_dmem(3, b"\x01\x02\x03")
    machine.load_program(assemble(text, machine.encoding))
    machine.reset()
    machine.set_pc(1)
    run = machine.run()
    assert run.cycles == 1 and run.counters["cycles"] == 1
    assert machine.state().regs[1] == 7 and machine.state().pc == 1 and machine.state().halted
    assert machine.read_dmem(3, 3).tolist() == [1, 2, 3]
    machine.reset()  # counters and registers cleared
    assert machine.state().counters["cycles"] == 0 and machine.state().regs[1] == 0
    assert set(machine.state().counters) == set(machine.counter_names)


def test_a_hung_program_raises(machine):
    machine.load_program(assemble("loop: @loop -> ctrl.jump", machine.encoding))
    machine.reset()
    with pytest.raises(SimulationError, match="did not halt within 500 cycles"):
        machine.run(max_cycles=500)


def test_unknown_engines_are_named():
    with pytest.raises(SimulationError, match="unknown engine 'fpga'; allowed: golden, rtl"):
        get_machine("fpga", None)
