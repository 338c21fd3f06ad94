"""Shared test configuration: CPU only, non-interactive plotting, float32/float64 fixtures."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("MPLBACKEND", "Agg")

import jax
import pytest


@pytest.fixture(params=["float32", "float64"])
def dtype_mode(request):
    """Run the test once in JAX's default float32 and once with 64-bit floats enabled."""
    if request.param == "float64":
        with jax.enable_x64(True):
            yield request.param
    else:
        yield request.param


@pytest.fixture
def x64():
    """Enable 64-bit floats for tests that compare against tight references."""
    with jax.enable_x64(True):
        yield
