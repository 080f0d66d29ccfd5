"""Errors that the command line reports as one clear line instead of a traceback."""


class NmtError(Exception):
    """Base class of the errors a user can fix (bad input, missing file, broken config)."""


class DataError(NmtError):
    """A corpus file is missing, misaligned or unreadable."""


class CheckpointError(NmtError):
    """A checkpoint is missing, corrupt or of an unknown format."""
