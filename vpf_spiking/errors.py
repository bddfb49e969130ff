"""Errors that carry a message meant for the user.

The CLI prints any :class:`VPFError` as one line and exits with status 2; library users can catch
the specific subclass.  Every message names the file, array or option that is wrong.
"""


class VPFError(ValueError):
    """Base class: bad input that the user can fix."""


class ModelError(VPFError):
    """A model, its parameters or a state has the wrong shape or non-finite values."""


class DataError(VPFError):
    """A data file is missing, corrupt, of the wrong shape, or not binary."""


class ConfigError(VPFError):
    """A network, protocol or command-line option is invalid."""


class TrainingDiverged(VPFError):
    """The objective or the parameters became non-finite during training."""


class VPFWarning(UserWarning):
    """A result that was computed but should not be trusted as it stands (the CLI prints one line)."""
