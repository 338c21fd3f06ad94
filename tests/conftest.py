"""Shared test configuration: CPU only, non-interactive plotting, float32/float64 fixtures, and
runtime checking of jaxtyping shape annotations (jaxtyping + beartype, as diffrax's tests do)."""

import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("MPLBACKEND", "Agg")

import jaxtyping

# Every function and dataclass (equinox Module) in bayestumor gets its annotations checked on each
# call, shapes included: `Float[Array, "x y z"]` arguments of one call must agree on x, y, z. The
# hook rewrites modules as they are imported, so it must be installed before anything imports
# bayestumor: pytest imports this file before any test module or nested conftest.
if "bayestumor" in sys.modules:
    raise RuntimeError(
        "bayestumor was imported before tests/conftest.py installed the jaxtyping import hook; "
        "its annotations would go unchecked"
    )
jaxtyping.install_import_hook("bayestumor", "beartype.beartype")

import jax  # noqa: E402
import pytest  # noqa: E402


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
