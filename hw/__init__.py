"""The TTA accelerator: config, instruction set, assembler, golden model, RTL simulator, energy."""

from hw.config import AccelConfig, load_accel_config
from hw.errors import AssemblyError, CodesignError, ConfigError, SimulationError

__all__ = [
    "AccelConfig",
    "AssemblyError",
    "CodesignError",
    "ConfigError",
    "SimulationError",
    "load_accel_config",
]
