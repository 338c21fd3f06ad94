"""`ReducedForward`: POD of solves with a quadratic response surface for the modal coefficients.

Truths: a field that *is* a quadratic in the model's features is reproduced to rounding (the
fit is exact there, whatever the standardisation, since an affine change of variables keeps a
quadratic a quadratic); around a posterior the PDE's own densities are reproduced on parameters
never solved for, and so is its log-likelihood (what decides whether a posterior sampled with the
model can be importance-weighted onto the exact one).
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from bayestumor.forward import AbstractForwardModel, GrowthParams, ReducedForward
from bayestumor.imaging import Grid
from bayestumor.inference import curvature_covariance, polished_map
from tests._calibration_problems import TRUE_GROWTH, TRUE_SEED_MM, tiny_problem


def _draws(key, n, spread=1.0, t_spread=0.1, **optional):
    """`n` parameters around the tiny problem's truth; `spread` scales the perturbations of
    D_w, ρ and the seed, `t_spread` is the sd of log T."""
    k = jax.random.split(key, 4)
    return GrowthParams(
        D_w=TRUE_GROWTH["D_w"] * jnp.exp(0.05 * spread * jax.random.normal(k[0], (n,))),
        rho=TRUE_GROWTH["rho"] * jnp.exp(0.03 * spread * jax.random.normal(k[1], (n,))),
        T=TRUE_GROWTH["T"] * jnp.exp(t_spread * jax.random.normal(k[2], (n,))),
        seed_mm=jnp.asarray(TRUE_SEED_MM) + 0.5 * spread * jax.random.normal(k[3], (n, 3)),
        **optional,
    )


class QuadraticField(AbstractForwardModel):
    """u = a + Σ_m q_m(f(θ)) B_m with f (log μ_D, log μ_ρ, seed) and q its monomials of degree
    ≤ 2, small enough never to be clipped."""

    terms: jax.Array
    _grid: Grid

    @property
    def grid(self):
        return self._grid

    def __call__(self, params):
        f = jnp.stack(
            [jnp.log(params.mu_D), jnp.log(params.mu_rho), *jnp.moveaxis(params.seed_mm, -1, 0)]
        )
        f = (f - jnp.array([1.7, 1.1, 10.0, 5.0, 0.0])) / jnp.array([0.05, 0.03, 0.5, 0.5, 0.5])
        monomials = jnp.concatenate([jnp.ones(1), f, jnp.outer(f, f)[np.triu_indices(5)]])
        return 0.5 + jnp.tensordot(monomials, self.terms, axes=1)


def test_a_quadratic_field_is_reproduced_to_rounding(dtype_mode):
    grid = Grid((6, 5, 4), np.eye(4))
    rng = np.random.default_rng(0)
    field = QuadraticField(jnp.asarray(0.002 * rng.standard_normal((21, 6, 5, 4))), grid)
    reduced = ReducedForward.fit(field, _draws(jax.random.key(0), 40))
    assert reduced.modes.shape[0] <= 20  # the field spans at most 20 directions about its mean
    held_out = _draws(jax.random.key(1), 10, spread=1.5)  # inside and a little beyond the fit
    truth = np.asarray(jax.vmap(field)(held_out))
    assert 0.0 < truth.min() and truth.max() < 1.0  # nothing clipped
    error = np.abs(np.asarray(jax.vmap(reduced)(held_out)) - truth).max()
    assert error < (1e-10 if dtype_mode == "float64" else 2e-5), error


@pytest.fixture(scope="module")
def around_the_posterior():
    """The tiny problem, a model of its PDE from 60 solves at draws of its Laplace approximation
    at the mode widened twofold (as a calibration would fit one), and 30 draws of the Laplace
    approximation itself, never solved for: unconstrained positions and their parameters."""
    problem = tiny_problem()
    mode = polished_map(problem)[0]
    center, unravel = ravel_pytree(mode)
    root = np.linalg.cholesky(curvature_covariance(problem, mode))
    noise = np.random.default_rng(0).standard_normal((90, center.size))
    widened = np.asarray(center) + noise * np.r_[np.full(60, 2.0), np.ones(30)][:, None] @ root.T
    positions = jax.vmap(unravel)(jnp.asarray(widened, jnp.float32))
    params = jax.vmap(lambda p: problem.growth_params(problem.constrain(p)))(positions)
    reduced = ReducedForward.fit(problem.forward, jax.tree.map(lambda a: a[:60], params))
    held_out = jax.tree.map(lambda a: a[60:], (positions, params))
    return problem, reduced, held_out


def test_the_pde_is_reproduced_around_a_posterior(around_the_posterior):
    """On posterior draws never solved for, the model is the PDE to 5e-3 in density, a tenth of
    the PET noise sd (0.05) the likelihood would read it through (measured 3.4e-3; a
    quadratic's remainder falls as the cube of the spread: at twice a posterior-sized spread
    it was 0.016 on this 10 mm grid)."""
    problem, reduced, (_, params) = around_the_posterior
    exact = np.asarray(jax.vmap(problem.forward)(params))
    error = np.abs(np.asarray(jax.vmap(reduced)(params)) - exact)
    assert exact.max() > 0.5  # a tumour, not an empty field
    assert error.max() < 5e-3, error.max()
    assert 0 < reduced.modes.shape[0] < reduced.solves


def test_its_log_likelihood_is_the_pdes(around_the_posterior):
    """Over posterior draws the log-likelihood of the scans under the model differs from the
    PDE's by a nearly constant amount: sd < 0.25, so importance weights exp(Δ) from the model's
    posterior onto the PDE's keep a relative ESS of about exp(−0.25²) ≈ 0.94 or more (for
    normal log-weights; measured 0.05)."""
    problem, reduced, (positions, _) = around_the_posterior
    exact = np.asarray(jax.vmap(problem.log_likelihood)(positions))
    modelled = dataclasses.replace(problem, forward=reduced).log_likelihood
    difference = np.asarray(jax.vmap(modelled)(positions)) - exact
    assert np.all(np.isfinite(exact))
    assert np.std(difference) < 0.25, difference


def test_bad_input_is_refused_with_what_is_wrong():
    problem = tiny_problem()
    with pytest.raises(ValueError, match="20 solves cannot fit a quadratic in 5 features"):
        ReducedForward.fit(problem.forward, _draws(jax.random.key(0), 20))
    still = _draws(jax.random.key(0), 30)
    still = dataclasses.replace(still, seed_mm=jnp.broadcast_to(jnp.asarray(TRUE_SEED_MM), (30, 3)))
    with pytest.raises(ValueError, match=r"do not vary in \['seed_x', 'seed_y', 'seed_z'\]"):
        ReducedForward.fit(problem.forward, still)
    grid = Grid((3, 3, 3), np.eye(4))
    field = QuadraticField(
        jnp.zeros((21, 3, 3, 3)) + 1e-3 * jnp.arange(21)[:, None, None, None], grid
    )
    reduced = ReducedForward.fit(field, _draws(jax.random.key(0), 30))
    with pytest.raises(ValueError, match=r"fitted with the optional parameters \(\)"):
        reduced(_draws(jax.random.key(1), 1, gm_ratio=jnp.full(1, 10.0)))
