"""codesign: hardware-in-the-loop co-design of quantized networks and a TTA accelerator."""

from hw.errors import CodesignError

__all__ = ["CodesignError"]
