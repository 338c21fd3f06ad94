"""Posterior statistics of a positive quantity with a log-normal model-form error added.

`bayestumor.config.STRESS_SUITE_MODEL_ERROR` says why and how large: the reported value is
θ·e^δ with θ a posterior draw and δ ~ N(0, τ²) independent of it. Its distribution is the
mixture over draws of log-normals, whose moments and quantiles are exact functions of the
draws, so no random numbers are needed: E[θe^δ] = E[θ]·e^{τ²/2}, E[(θe^δ)²] = E[θ²]·e^{2τ²},
and the quantile q_p solves mean_i Φ((log q − log θ_i)/τ) = p.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.special import ndtr

from bayestumor.config import STRESS_SUITE_MODEL_ERROR

SUMMARY_PROBABILITIES = (0.05, 0.25, 0.75, 0.95)
_BISECTIONS = 60  # the bracket is ≤ 16τ + range wide: 2⁻⁶⁰ of it is far below float64's ulp


def model_error_kind(has_pet: bool) -> str:
    """The kind of data a model-form error was measured for (`STRESS_SUITE_MODEL_ERROR`'s keys):
    PET carries most of the growth, so scans with and without it are told apart."""
    return "with-pet" if has_pet else "mri-only"


def model_error_sd(kind: str, names: Sequence[str], model_error: str) -> dict[str, float]:
    """τ of each reported quantity in `names` for data of `kind` (`model_error_kind`) under
    ``CalibrationConfig.model_error``; empty for ``"none"``, zeros left out."""
    if model_error == "none":
        return {}
    table = STRESS_SUITE_MODEL_ERROR[kind]
    return {name: table[name] for name in names if table.get(name, 0.0) > 0.0}


def with_model_error(
    values: np.ndarray, tau: float, probabilities: Sequence[float] = SUMMARY_PROBABILITIES
) -> dict[str, float]:
    """Mean, sd and quantiles of θ·e^δ, θ uniform over `values`, δ ~ N(0, τ²).

    τ = 0 gives the draws' own statistics (quantiles as `numpy.quantile`), whatever their sign;
    τ > 0 needs θ ≥ 0. Draws at 0 (a referenced growth that does not exist,
    `bayestumor.forward.referenced_growth`) stay at 0.

    Returns:
        ``{"mean", "sd", "q05", "q25", ...}``, one ``q`` key per probability (in per cent).
    """
    values = np.asarray(values, np.float64).reshape(-1)
    if tau < 0:
        raise ValueError(f"the model error's sd must be ≥ 0, got {tau}")
    if tau > 0 and (np.any(values < 0) or not np.all(np.isfinite(values))):
        raise ValueError("a model-form error needs finite, non-negative draws")
    probabilities = np.asarray(probabilities, np.float64)
    mean = values.mean() * np.exp(tau**2 / 2)
    if tau == 0.0:
        sd, quantiles = values.std(), np.quantile(values, probabilities)
    else:
        second = np.mean(values**2) * np.exp(2 * tau**2)
        sd, quantiles = (
            np.sqrt(max(second - mean**2, 0.0)),
            _mixture_quantiles(values, tau, probabilities),
        )
    statistics = {"mean": float(mean), "sd": float(sd)}
    for p, q in zip(probabilities, quantiles, strict=True):
        statistics[f"q{round(100 * p):02d}"] = float(q)
    return statistics


def _mixture_quantiles(values: np.ndarray, tau: float, probabilities: np.ndarray) -> np.ndarray:
    zero = np.count_nonzero(values == 0) / values.size
    logs = np.log(values[values > 0])

    def cdf(log_q: np.ndarray) -> np.ndarray:  # P(θe^δ ≤ e^{log_q}), vectorised over log_q
        return zero + (1 - zero) * ndtr((log_q[:, None] - logs[None, :]) / tau).mean(axis=1)

    low = np.full(probabilities.shape, logs.min() - 8 * tau)
    high = np.full(probabilities.shape, logs.max() + 8 * tau)
    for _ in range(_BISECTIONS):
        middle = (low + high) / 2
        below = cdf(middle) < probabilities
        low, high = np.where(below, middle, low), np.where(below, high, middle)
    return np.where(probabilities <= zero, 0.0, np.exp((low + high) / 2))
