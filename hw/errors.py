"""The one exception root of the project.

It lives in `hw/`, the lowest package, so that `compiler/` and `codesign/` can derive from it
without `hw/` importing anything above it.
"""


class CodesignError(Exception):
    """Root of every error codesign raises on purpose."""


class ConfigError(CodesignError):
    """An accelerator or experiment config is malformed."""


class AssemblyError(CodesignError):
    """Assembly text or a binary image is not a valid program for the config."""


class SimulationError(CodesignError):
    """The simulator could not be built, or a program did not run to completion."""
