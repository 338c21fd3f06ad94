"""Synthetic series with known parameters for the radiotherapy tests."""

import jax.numpy as jnp
import numpy as np
import pytest

from bayestumor.radiotherapy import RTParams, Series, burden

T_RT_DAYS = 50.0
TIMES_DAYS = np.array([0.0, 20.0, 45.0, 70.0, 100.0, 140.0, 200.0])
TRUE_PARAMS = RTParams(A0=100.0, lam=0.02, S=0.3, lam_decay=0.05, slope=0.2, delay=21.0)


def true_burden(times_days: np.ndarray) -> np.ndarray:
    """Noise-free burden (mm²) of `TRUE_PARAMS` at `times_days`."""
    return np.asarray(burden(TRUE_PARAMS, jnp.asarray(times_days, jnp.float32), T_RT_DAYS))


@pytest.fixture
def noisy_series():
    """Factory: `n` series with multiplicative lognormal noise `sigma`, seeded."""

    def make(n: int, sigma: float, seed: int = 0) -> list[Series]:
        rng = np.random.default_rng(seed)
        clean = true_burden(TIMES_DAYS)
        return [
            Series(
                f"s{i}",
                TIMES_DAYS,
                clean * np.exp(sigma * rng.standard_normal(clean.size)),
                T_RT_DAYS,
            )
            for i in range(n)
        ]

    return make
