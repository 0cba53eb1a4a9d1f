import random

import pytest

from hw.asm import assemble, disassemble
from hw.errors import AssemblyError
from hw.fuzz import random_program
from hw.isa import Encoding

PROGRAM = """
start:  5 -> r1, 7 -> alu.in1
        r1 -> alu.add, -3 -> vmac.x      # comment
loop:   ?b0 alu.res -> r2, _, @loop -> lsu.data
        ?!b1 r2 -> lsu.stw
        nop
        0 -> ctrl.halt
"""


def test_round_trip_hand_written(tiny):
    enc = Encoding(tiny)
    prog = assemble(PROGRAM, enc)
    assert prog.labels == {"start": 0, "loop": 2}
    text = disassemble(prog)
    assert text.splitlines()[2] == "?b0 alu.res -> r2, _, 2 -> lsu.data"
    again = assemble(text, enc)
    assert again.words == prog.words
    assert disassemble(again) == text


def test_round_trip_random(tiny):
    enc = Encoding(tiny)
    for seed in range(100):
        prog = assemble(random_program(enc, random.Random(seed)), enc)
        assert assemble(disassemble(prog), enc).words == prog.words


def test_encoding_fields_follow_the_config(tiny):
    enc = Encoding(tiny)
    # 16 registers + 2 guard registers + 3 result ports = 21 sources -> 5 bits < 12-bit immediates
    assert enc.src_bits == 1 + 12
    assert enc.width == tiny.buses * (enc.dst_bits + enc.src_bits + enc.guard_bits)
    assert enc.imm_range == (-2048, 2047)


@pytest.mark.parametrize("text, message", [
    ("1 -> r99", "prog.s:1: unknown destination 'r99'"),
    ("5000 -> r1", "immediate 5000 does not fit 12 bits"),
    ("r1 -> r2, r3 -> r4, r5 -> r6, r7 -> r8", "4 moves but the accelerator has 3 buses"),
    ("@nowhere -> ctrl.jump", "unknown label 'nowhere'"),
    ("?b7 1 -> r1", "guard register b7 does not exist"),
    ("r1 => r2", "cannot read move 'r1 => r2'"),
    ("foo -> r1", "unknown source 'foo'"),
])
def test_errors_name_line_and_token(tiny, text, message):
    with pytest.raises(AssemblyError, match=message.replace("(", r"\(").replace(")", r"\)")):
        assemble(text, Encoding(tiny), name="prog.s")
