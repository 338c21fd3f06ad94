"""Exceptions raised for bad user input. Each names the offending file and the problem."""

from __future__ import annotations

from pathlib import Path


class BayesTumorError(Exception):
    """Base class of every error bayestumor raises on purpose."""


class InputError(BayesTumorError, ValueError):
    """Bad user input: a file, an array or an option that cannot be used.

    Args:
        problem: what is wrong, in words a user can act on.
        path: the file (or directory) the problem was found in, if any.
    """

    def __init__(self, problem: str, path: str | Path | None = None):
        self.problem = problem
        self.path = None if path is None else Path(path)
        message = problem if path is None else f"{path}: {problem}"
        super().__init__(message)


class DiagnosticsWarning(UserWarning):
    """Sampler diagnostics failed (R-hat, ESS, divergences, weight ESS): do not trust the result."""
