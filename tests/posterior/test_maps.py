"""Posterior maps against hand-computed statistics; NIfTI written back in the original space."""

import jax
import numpy as np
import pytest

from bayestumor import load_nifti, make_phantom
from bayestumor.imaging import Grid
from bayestumor.model import observation_model, visibility_probability
from bayestumor.posterior import posterior_maps, write_posterior_maps


def _draws():
    # Four draws of a 2×2×2 field; voxel (0,0,0) takes 0, 0.1, 0.2, 0.3, the others 0.
    densities = np.zeros((4, 2, 2, 2), np.float32)
    densities[:, 0, 0, 0] = [0.0, 0.1, 0.2, 0.3]
    return densities


def test_statistics_by_hand():
    grid = Grid((2, 2, 2), np.diag([2.0, 2.0, 2.0, 1.0]))
    maps = posterior_maps(_draws(), grid, threshold_u=0.05, ctv_probability=0.75)
    assert maps.mean[0, 0, 0] == pytest.approx(0.15)
    assert maps.sd[0, 0, 0] == pytest.approx(np.std([0.0, 0.1, 0.2, 0.3]), rel=1e-5)
    assert maps.quantiles[0.5][0, 0, 0] == pytest.approx(0.15)
    assert maps.exceedance[0, 0, 0] == pytest.approx(0.75)  # 3 of 4 draws exceed 0.05
    assert maps.ctv.sum() == 1 and maps.ctv[0, 0, 0]
    assert maps.ctv_ml == pytest.approx(0.008)  # one 2 mm voxel = 8 mm³
    assert posterior_maps(_draws(), grid, threshold_u=0.05, ctv_probability=0.8).ctv.sum() == 0


@pytest.mark.parametrize(
    ("voxel", "at_edge"),
    [((2, 2, 2), False), ((0, 2, 2), True), ((2, 4, 2), True), ((2, 2, 4), True)],
)
def test_ctv_at_roi_edge_flags_a_ctv_touching_any_face(voxel, at_edge):
    densities = np.zeros((4, 5, 5, 5), np.float32)
    densities[:, 1:4, 1:4, 1:4] = 0.5  # an interior CTV...
    densities[(slice(None), *voxel)] = 0.5  # ...plus one voxel, on a face or not
    maps = posterior_maps(densities, Grid((5, 5, 5), np.eye(4)), threshold_u=0.05)
    assert maps.ctv_at_roi_edge == at_edge


def test_predicted_visibility_is_posterior_mean_of_alpha():
    grid = Grid((2, 2, 2), np.eye(4))
    imaging = {"u_c_flair": np.array([0.1, 0.2, 0.1, 0.2]), "sigma_alpha": np.full(4, 0.05)}
    maps = posterior_maps(_draws(), grid, imaging, observation_model(["t1c", "flair", "pet"]))
    expected = np.mean(
        [
            visibility_probability(u, c, 0.05)
            for u, c in zip(_draws()[:, 0, 0, 0], imaging["u_c_flair"], strict=False)
        ]
    )
    assert maps.predicted["flair_probability"][0, 0, 0] == pytest.approx(expected, rel=1e-5)
    # T1c and PET lack their parameters (u_c_t1c; b, sigma): no map rather than a wrong one.
    assert set(maps.predicted) == {"flair_probability"}


def test_maps_of_many_draws_are_summarised_in_slabs_and_chunks_exactly():
    """Half-precision draws too many for one working copy (600 × 40·50·60 > 2²⁶ values: the
    statistics run in two or more x-slabs, the predicted image in chunks of draws, the last
    padded) give the statistics NumPy computes on the whole float32 array at once."""
    rng = np.random.default_rng(0)
    grid = Grid((40, 50, 60), np.eye(4))
    draws = rng.beta(2.0, 5.0, size=(600, *grid.shape)).astype(np.float16)
    imaging = {"u_c_flair": rng.uniform(0.2, 0.3, 600), "sigma_alpha": np.full(600, 0.05)}
    maps = posterior_maps(
        draws, grid, imaging, observation_model(["flair"]), threshold_u=0.3, quantiles=(0.1, 0.5)
    )
    u = draws.astype(np.float32)
    np.testing.assert_allclose(maps.mean, u.mean(0, dtype=np.float64), atol=1e-6)
    np.testing.assert_allclose(maps.sd, u.std(0, dtype=np.float64), atol=1e-6)
    np.testing.assert_array_equal(maps.exceedance, np.mean(u > 0.3, axis=0, dtype=np.float32))
    np.testing.assert_allclose(maps.quantiles[0.1], np.quantile(u, 0.1, axis=0), atol=1e-6)
    np.testing.assert_allclose(maps.quantiles[0.5], np.quantile(u, 0.5, axis=0), atol=1e-6)
    alpha = jax.vmap(visibility_probability, in_axes=(0, 0, None))(
        u[:, 5], np.float32(imaging["u_c_flair"]), 0.05
    )
    np.testing.assert_allclose(
        maps.predicted["flair_probability"][5], np.mean(alpha, axis=0), atol=1e-5
    )
    assert maps.n_draws == 600


def test_written_back_into_the_original_space(tmp_path):
    original = make_phantom((12, 12, 12), 4.0).grid
    from bayestumor.imaging import crop_grid

    _slices, roi_grid = crop_grid(original, np.array([2, 3, 4]), np.array([4, 5, 6]))
    maps = posterior_maps(_draws(), roi_grid, threshold_u=0.05, ctv_probability=0.5)
    written = write_posterior_maps(maps, tmp_path, original)
    mean, grid = load_nifti(written["files"]["density_mean"])
    assert grid.same_as(original) and mean.shape == (12, 12, 12)
    assert mean[2, 3, 4] == pytest.approx(0.15)
    assert mean.sum() == pytest.approx(0.15)
    ctv, _ = load_nifti(written["files"]["ctv"])
    assert ctv.sum() == 1 and ctv[2, 3, 4] == 1
    assert written["ctv_ml"] == pytest.approx(0.064)
    for name in ("density_sd", "density_q05", "density_q95", "infiltration_probability"):
        assert (tmp_path / f"{name}.nii.gz").exists()
