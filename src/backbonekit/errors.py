"""User-facing errors.

Anything raised as a ``BackbonekitError`` is a problem with the user's input (a file, a field, a name), not a bug:
the CLI prints its message as one line and exits with status 2, without a traceback.
"""


class BackbonekitError(Exception):
    """A problem with the user's input, reported as one clear line."""


class WeightsError(BackbonekitError):
    """A weight file that cannot be read or does not fit the model."""


class DataError(BackbonekitError):
    """A data set, label file or image that cannot be used; the message names the file (and line or row)."""


class ConfigError(BackbonekitError):
    """An unknown model name, option value or combination of options."""


class GateRefused(BackbonekitError):
    """A result refused by an accuracy gate (int8 losing more than allowed); the message names the figures."""
