"""The discretisation correction: block averages, nested grids, and an offset that carries over to
parameters near the one it was measured at (the premise of measuring it once, at the mode)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bayestumor.forward import (
    CorrectedForward,
    GrowthParams,
    PDEForward,
    block_average,
    discretisation_offset,
)
from bayestumor.imaging import Anatomy, Grid, average_to_rescaled


def _white_box(n: int, spacing: float) -> Anatomy:
    """A cube of white matter, n voxels of `spacing` mm a side, first voxel's corner at 0."""
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = spacing / 2
    ones = np.ones((n, n, n), np.float32)
    return Anatomy(wm=ones, gm=0 * ones, csf=0 * ones, grid=Grid((n, n, n), affine))


def _params(mu_D: float, seed_mm) -> GrowthParams:
    return GrowthParams.from_scale_free(
        jnp.float32(mu_D), jnp.float32(2.2), jnp.asarray(seed_mm, jnp.float32)
    )


def test_block_average_conserves_mass_and_matches_the_resampler():
    values = jax.random.uniform(jax.random.key(0), (8, 6, 4))
    coarse = block_average(values, 2)
    assert coarse.shape == (4, 3, 2)
    assert float(coarse.sum() * 8) == pytest.approx(float(values.sum()), rel=1e-6)
    # The imaging module's overlap-weighted resampler (sparse operators per axis) agrees.
    np.testing.assert_allclose(
        coarse, average_to_rescaled(np.asarray(values), (2.0, 2.0, 2.0)), atol=1e-6
    )
    with pytest.raises(ValueError, match="no blocks"):
        block_average(values, 3)


def test_offset_from_a_finer_grid_carries_over_to_nearby_parameters():
    """ε measured at θ̂ removes most of the coarse map's error at θ' ≠ θ̂ too: μ_D 4 % larger
    and the seed 1 mm away (several posterior sds of the stress suite's fits) — so one fine
    solve at the mode corrects the map across the posterior. The corrected 4 mm map's distance
    to the 2 mm map (block-averaged) is less than half the uncorrected one (measured: 0.006
    against 0.019; at 0.5 mm and +2 % 0.002); the error itself is ≈ 2 % of density at the front
    (a 1.4 mm front on a 4 mm grid, in uniform tissue: no partial volumes)."""
    coarse = PDEForward.from_anatomy(_white_box(12, 4.0))
    fine = PDEForward.from_anatomy(_white_box(24, 4.0 / 2))
    centre = np.array([24.3, 23.1, 24.7])
    at, near = _params(3.0, centre), _params(3.12, centre + np.array([1.0, 0.0, -0.5]))
    sized = [m.with_max_steps(m.stable_steps(near) + 1) for m in (coarse, fine)]
    offset = discretisation_offset(*sized, at)
    corrected = CorrectedForward(sized[0], offset)
    truth = block_average(sized[1](near), 2)
    before = float(jnp.abs(sized[0](near) - truth).max())
    after = float(jnp.abs(corrected(near) - truth).max())
    assert 0.01 < before < 0.2
    assert after < before / 2
    # At the point it was measured, the corrected map is the fine one (up to rounding).
    np.testing.assert_allclose(corrected(at), block_average(sized[1](at), 2), atol=1e-5)
    # It differentiates like the map it corrects.
    gradient = jax.grad(lambda m: corrected(_params(m, centre)).sum())(3.0)
    assert np.isfinite(gradient) and gradient > 0


def test_offset_refuses_grids_that_do_not_nest():
    coarse = PDEForward.from_anatomy(_white_box(6, 4.0))
    shifted = _white_box(12, 2.0)
    shifted = Anatomy(
        wm=shifted.wm,
        gm=shifted.gm,
        csf=shifted.csf,
        grid=Grid(shifted.grid.shape, shifted.grid.affine + _shift(1.0)),
    )
    params = _params(2.0, [12.0, 12.0, 12.0])
    for fine in (PDEForward.from_anatomy(shifted), PDEForward.from_anatomy(_white_box(10, 2.0))):
        with pytest.raises(ValueError, match="does not subdivide"):
            discretisation_offset(coarse, fine, params)
    with pytest.raises(ValueError, match="offset of shape"):
        CorrectedForward(coarse, jnp.zeros((5, 6, 6)))


def _shift(mm: float) -> np.ndarray:
    shift = np.zeros((4, 4))
    shift[:3, 3] = mm
    return shift
