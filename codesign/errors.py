"""Errors of the search side; all derive from the project's one root, `CodesignError`."""

from hw.errors import CodesignError, ConfigError

__all__ = ["CodesignError", "ConfigError", "DataError"]


class DataError(CodesignError):
    """A data set is missing or malformed; the message names the path and what was expected."""
