from hw.errors import CodesignError


class CompileError(CodesignError):
    """A model or layer cannot be compiled; the message names the op or layer."""


class MemoryFitError(CompileError):
    """Weights or activations do not fit the accelerator's data memory."""


class CompileWarning(UserWarning):
    """Compiled, but not exactly as the float model asks (a saturated bias, say); names the
    layer."""
