"""The error hierarchy: everything bayestumor raises on purpose derives from `BayesTumorError`.

The command line turns any `BayesTumorError` into ``bayestumor: error: …`` and exit code 2.
"""

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


class SolverError(BayesTumorError, RuntimeError):
    """A forward solve failed: it ran out of its step budget or produced non-finite values.

    Samplers use the forward maps' NaN-returning path instead (a NaN log density is a rejected
    proposal); every other caller gets this error rather than a silent NaN.
    """


class DiagnosticsWarning(UserWarning):
    """Sampler diagnostics failed (R-hat, ESS, divergences, weight ESS): do not trust the result."""
