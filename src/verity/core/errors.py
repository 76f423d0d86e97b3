"""Errors with a one-line message and a stable code."""


class VerityError(Exception):
    """Base class of verity's expected errors (shown as one line, never a traceback)."""

    code = "error"


class InputError(VerityError):
    """An input could not be read.

    Parameters
    ----------
    message : str
        One line saying what is wrong, without the file name (the caller adds it).
    code : str
        A stable machine-readable code, for example ``"too_large"`` or ``"truncated"``.
    """

    def __init__(self, message: str, code: str = "unreadable"):
        super().__init__(message)
        self.code = code


class ConfigError(VerityError):
    """A setting (environment variable, flag, config value) is invalid; exit code 2 (usage)."""

    code = "config"
    exit_code = 2
