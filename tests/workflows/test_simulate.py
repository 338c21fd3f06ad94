"""`bayestumor simulate`: round trip into the input space, the command line and its errors."""

import numpy as np
import pytest

from bayestumor.cli import main
from bayestumor.errors import InputError
from bayestumor.forward import GrowthParams
from bayestumor.imaging import load_nifti, make_phantom, save_nifti
from bayestumor.workflows import simulate


@pytest.fixture(scope="module")
def phantom():
    return make_phantom((32, 32, 32), 4.0)


@pytest.fixture
def patient_dir(tmp_path, phantom):
    for name in ("wm", "gm", "csf"):
        save_nifti(tmp_path / f"{name}.nii.gz", getattr(phantom, name), phantom.grid)
    lesion = np.zeros(phantom.shape, bool)
    lesion[18:21, 12:15, 15:18] = True
    save_nifti(tmp_path / "t1c.nii.gz", lesion, phantom.grid)
    save_nifti(tmp_path / "flair.nii.gz", lesion, phantom.grid)
    return tmp_path


def seed_in_white_matter(anatomy):
    voxel = np.argwhere(anatomy.wm > 0.9)[len(np.argwhere(anatomy.wm > 0.9)) // 2]
    return anatomy.grid.voxel_to_world(voxel.astype(float))


def test_crop_solve_write_back_keeps_shape_affine_and_mass(phantom):
    """Cropped to the brain and solved at the input spacing, the density comes back on the input
    grid voxel-for-voxel: same shape and affine, and the same total as the solver's ROI field."""
    params = GrowthParams(D_w=0.5, rho=0.02, T=200.0, seed_mm=seed_in_white_matter(phantom))
    result = simulate(phantom, params, progress=False)
    assert result.density.shape == phantom.shape
    assert result.roi_grid.shape != phantom.shape  # it really was cropped
    np.testing.assert_allclose(result.density.sum(), result.roi_density.sum(), rtol=1e-6)
    assert np.all(result.density[phantom.wm + phantom.gm == 0] == 0)


def test_solve_on_refined_grid_agrees_after_write_back(phantom):
    """Solving at 2 mm (anatomy interpolated) and mapping back to the 4 mm input approximates the
    4 mm solve: tumour volumes (u ≥ 0.25) agree within 10 %, the 4 mm discretisation error."""
    params = GrowthParams(D_w=0.8, rho=0.025, T=300.0, seed_mm=seed_in_white_matter(phantom))
    coarse = simulate(phantom, params, progress=False).density
    fine = simulate(phantom, params, spacing_mm=2.0, progress=False).density
    assert fine.shape == coarse.shape
    assert abs((coarse >= 0.25).sum() / (fine >= 0.25).sum() - 1) < 0.1


def test_cli_writes_nifti_in_input_space_and_png(patient_dir, tmp_path, capsys):
    out = tmp_path / "out" / "density.nii.gz"
    code = main(["simulate", str(patient_dir), "--out", str(out), "--T", "150", "--quiet"])
    assert code == 0
    density, grid = load_nifti(out)
    _, reference = load_nifti(patient_dir / "wm.nii.gz")
    assert density.shape == reference.shape
    np.testing.assert_array_equal(grid.affine, reference.affine)
    assert 0 < density.max() <= 1
    assert (tmp_path / "out" / "density.png").stat().st_size > 10_000
    assert "volume with u ≥ 0.25" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--seed-mm", "500", "0", "0"], "outside the brain"),
        (["--D-w", "-1"], "must be positive"),
        (["--out-format-typo"], None),
    ],
)
def test_cli_bad_input_is_a_clear_error_and_writes_nothing(
    patient_dir, tmp_path, capsys, extra, message
):
    out = tmp_path / "out" / "density.nii.gz"
    args = ["simulate", str(patient_dir), "--out", str(out), "--quiet", *extra]
    if message is None:
        with pytest.raises(SystemExit):
            main(args)
    else:
        assert main(args) == 2
        assert message in capsys.readouterr().err
    assert not out.exists()


def test_seed_in_csf_is_rejected(phantom):
    csf_voxel = np.argwhere((phantom.csf > 0.99) & (phantom.wm + phantom.gm == 0))
    inside = next(v for v in csf_voxel if np.all((v > 4) & (v < 27)))
    params = GrowthParams(
        D_w=0.5, rho=0.02, T=100.0, seed_mm=phantom.grid.voxel_to_world(inside.astype(float))
    )
    with pytest.raises(InputError, match="not in white or grey matter"):
        simulate(phantom, params, progress=False)


def test_missing_patient_dir_names_it(tmp_path, capsys):
    missing = tmp_path / "nobody"
    assert main(["simulate", str(missing), "--out", str(tmp_path / "d.nii.gz"), "--quiet"]) == 2
    assert "nobody" in capsys.readouterr().err
