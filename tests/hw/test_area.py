import pytest

from hw.area import area

pytestmark = [pytest.mark.rtl, pytest.mark.slow]


def test_area_of_tiny_per_unit(tiny):
    report = area(tiny)
    assert set(report.units) == {"alu", "lsu", "vmac", "dma", "core"}
    for unit, a in report.units.items():
        assert a.cells > 100 and a.gate_equivalents > a.cells / 2, unit
    # 8 int8 + 32 ternary + 64 binary lanes with 64 accumulators outweigh the 32-bit ALU.
    assert report.units["vmac"].gate_equivalents > report.units["alu"].gate_equivalents
    assert report.total.cells == sum(a.cells for a in report.units.values())
    assert report.memory_bits["dmem"] == tiny.dmem_rows * tiny.vector_width
    assert area(tiny) == report  # cached
