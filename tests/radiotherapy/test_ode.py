"""The closed form equals the diffrax ODE solution (float32 and float64), and its pieces."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bayestumor.radiotherapy import RTParams, burden, burden_ode, log_cosh

PARAMS = dict(A0=80.0, lam=0.015, S=0.4, lam_decay=0.06, slope=0.15, delay=18.0)


@pytest.mark.parametrize(
    ("x64", "solver_rtol", "tolerance"), [(False, 1e-6, 2e-5), (True, 1e-10, 1e-8)]
)
def test_closed_form_equals_ode(x64, solver_rtol, tolerance):
    """Independent truth: a Tsit5 solve of the two-compartment ODE at tight tolerance."""
    with jax.enable_x64(x64):
        dtype = jnp.float64 if x64 else jnp.float32
        params = RTParams(**{k: jnp.asarray(v, dtype) for k, v in PARAMS.items()})
        times = jnp.linspace(0.0, 365.0, 74, dtype=dtype)
        closed = burden(params, times, 60.0)
        compartments = jax.jit(lambda p: burden_ode(p, times, 60.0, rtol=solver_rtol, atol=1e-12))(
            params
        )
        assert closed.dtype == dtype and compartments.dtype == dtype
        np.testing.assert_allclose(compartments.sum(-1), closed, rtol=tolerance)


def test_before_rt_is_exponential_and_doomed_grows_until_delay():
    """Before t_RT A = A₀e^{λt}; the doomed compartment peaks exactly at t_RT + delay."""
    params = RTParams(**PARAMS)
    before = jnp.linspace(0.0, 59.0, 30)
    np.testing.assert_allclose(
        burden(params, before, 60.0), 80.0 * np.exp(0.015 * np.asarray(before)), rtol=1e-5
    )
    times = jnp.linspace(60.0, 160.0, 1001)
    doomed = burden_ode(params, times, 60.0)[:, 1]
    assert float(times[jnp.argmax(doomed)]) == pytest.approx(60.0 + 18.0, abs=0.2)


def test_log_cosh_is_stable_and_exact():
    """Against numpy's log(cosh) where it is finite, and |x| − log 2 far out (float32)."""
    x = jnp.array([-30.0, -1.0, 0.0, 0.5, 30.0], jnp.float32)
    np.testing.assert_allclose(
        log_cosh(x), np.log(np.cosh(np.asarray(x, np.float64))), rtol=1e-6, atol=1e-7
    )
    big = jnp.array([500.0, -2000.0], jnp.float32)
    np.testing.assert_allclose(log_cosh(big), np.abs(big) - np.log(2.0), rtol=1e-6)
    assert np.isfinite(jax.grad(lambda v: log_cosh(v))(0.0))


def test_unconstrained_round_trip():
    params = RTParams(**PARAMS)
    back = RTParams.from_unconstrained(params.to_unconstrained())
    for name, value in PARAMS.items():
        assert float(getattr(back, name)) == pytest.approx(value, rel=1e-5)
