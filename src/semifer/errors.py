"""Errors about user input that name the file, the line and the fix instead of a deep traceback."""

from __future__ import annotations

from pathlib import Path


class SemiferError(Exception):
    """Base class for errors that the CLI reports as one clear message."""


class DataError(SemiferError):
    """Bad dataset input: the message names the file (and line) and says how to fix it."""

    def __init__(self, path: str | Path, message: str, line: int | None = None, fix: str | None = None):
        self.path = str(path)
        self.message = message
        self.line = line
        self.fix = fix
        where = self.path if line is None else f"{self.path}, line {line}"
        text = f"{where}: {message}"
        if fix:
            text += f"\n  fix: {fix}"
        super().__init__(text)

    def __reduce__(self) -> tuple[type, tuple[str, str, int | None, str | None]]:
        """Pickle by the constructor's arguments, so an error raised in a loader worker crosses to the trainer."""
        return type(self), (self.path, self.message, self.line, self.fix)


class ConfigError(SemiferError, ValueError):
    """Bad configuration value or override (a ValueError too, as a bad argument to the code that reads it)."""


class CheckpointError(SemiferError):
    """A model or checkpoint file that cannot be loaded safely: corrupt, truncated, or needing pickled code."""


class DataWarning(UserWarning):
    """Data that trains, but not as asked (an empty class folder, a split larger than the pool)."""
