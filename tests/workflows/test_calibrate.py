"""The calibration pipeline: configuration, bad input, atomic output, end to end, CLI."""

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import jax
import matplotlib.pyplot as plt
import numpy as np
import pytest
import xarray as xr

from bayestumor import load_nifti, load_patient, save_nifti
from bayestumor.cli import main
from bayestumor.config import (
    DEFAULT_COARSE_SPACING_MM,
    DEFAULT_SPACING_MM,
    GM_RATIO_RANGE,
    STRESS_SUITE_MODEL_ERROR,
)
from bayestumor.errors import DiagnosticsWarning, InputError
from bayestumor.forward.surrogate import SPACING_MM as SURROGATE_SPACING_MM
from bayestumor.imaging import Anatomy, Grid, Observations, Patient
from bayestumor.model import Priors
from bayestumor.workflows import (
    CalibrationConfig,
    calibrate_patient,
    calibration_spacing_mm,
    report_directory,
    validate_patient,
)
from tests._calibration_problems import FAST_PRIORS, REACTION_STEP, synthetic_patient

FAST_CONFIG = CalibrationConfig(
    spacing_mm=10.0,
    margin_mm=20.0,
    chains=1,
    warmup=15,
    draws=15,
    priors=FAST_PRIORS,
    stepping="heun",
    reaction_step=REACTION_STEP,
    sampler="smc",
    smc_particles=32,
    smc_mcmc_steps=3,
    progress=False,
)


def _write_patient(directory, patient, **replace):
    directory.mkdir(parents=True)
    volumes = {
        "wm": patient.anatomy.wm,
        "gm": patient.anatomy.gm,
        "csf": patient.anatomy.csf,
        "t1c": patient.observations.t1c,
        "flair": patient.observations.flair,
        "pet": patient.observations.pet,
    }
    volumes.update(replace)
    for name, volume in volumes.items():
        if volume is not None:
            grid = patient.grid
            if isinstance(volume, tuple):  # (values, grid) for a deliberately different grid
                volume, grid = volume
            save_nifti(directory / f"{name}.nii.gz", volume, grid)
    return directory


def test_config_json_round_trip():
    config = FAST_CONFIG.replace(priors=Priors(parametrisation="scale_free"), seed=7)
    restored = CalibrationConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert restored == config
    with pytest.raises(InputError, match="unknown calibration options"):
        CalibrationConfig.from_dict({"samplr": "nuts"})
    with pytest.raises(InputError, match="sampler"):
        CalibrationConfig(sampler="hmc")
    with pytest.raises(InputError, match="spacing_mm"):
        CalibrationConfig(spacing_mm=0.0)
    with pytest.raises(InputError, match="coarse_spacing_mm"):
        CalibrationConfig(coarse_spacing_mm=-1.0)


def test_coarse_to_fine_only_on_grids_finer_than_the_coarse_one():
    assert CalibrationConfig(spacing_mm=2.0).coarse_to_fine
    assert not CalibrationConfig(spacing_mm=4.0).coarse_to_fine
    assert not CalibrationConfig(spacing_mm=2.0, coarse_spacing_mm=None).coarse_to_fine
    with pytest.raises(ValueError, match="calibration_spacing_mm"):
        _ = CalibrationConfig().coarse_to_fine  # undecided until the scans are known


@pytest.mark.parametrize(
    "scan_mm, options, expected_mm",
    [
        (1.0, {}, DEFAULT_SPACING_MM),  # real scans: 2 mm, coarse-to-fine
        (2.0, {}, DEFAULT_SPACING_MM),
        ((1.0, 1.0, 3.0), {}, 3.0),  # never finer than the scans' coarsest axis
        (5.0, {}, 5.0),
        (1.0, {"spacing_mm": 1.0}, 1.0),  # asked for: as asked, finer than the scans or not
        (8.0, {"spacing_mm": 4.0}, 4.0),
        (1.0, {"forward": "surrogate"}, SURROGATE_SPACING_MM),  # the network's own grid
        (1.0, {"discretisation_correction": 2}, DEFAULT_COARSE_SPACING_MM),  # the grid corrected
    ],
)
def test_the_default_grid_is_2_mm_or_the_scans_where_coarser(scan_mm, options, expected_mm):
    spacing = np.broadcast_to(np.asarray(scan_mm, float), (3,))
    grid = Grid((4, 4, 4), np.diag([*spacing, 1.0]))
    wm, nothing = np.ones((4, 4, 4), np.float32), np.zeros((4, 4, 4), np.float32)
    patient = Patient(
        Anatomy(wm=wm, gm=nothing, csf=nothing, grid=grid),
        Observations(grid=grid, flair=np.ones((4, 4, 4), bool)),
        name="scans",
    )
    config = CalibrationConfig(**options)
    assert calibration_spacing_mm(patient, config) == pytest.approx(expected_mm)
    # The decided grid is a valid configuration: a correction is never asked of a grid that
    # is sampled coarse-to-fine.
    config.replace(spacing_mm=calibration_spacing_mm(patient, config))


@pytest.mark.parametrize(
    "case, message",
    [
        ("empty", "segmentations are empty"),
        ("pet_nan", "NaN"),
        ("pet_range", r"\[0, 1\]"),
    ],
)
def test_bad_observations_raise_and_leave_no_output(tmp_path, case, message):
    patient = synthetic_patient(pet=True)
    observations = patient.observations
    if case == "empty":
        observations = type(observations)(
            grid=patient.grid,
            t1c=np.zeros_like(observations.t1c),
            flair=np.zeros_like(observations.flair),
        )
    else:
        pet = np.array(observations.pet)
        pet[0, 0, 0] = np.nan if case == "pet_nan" else 1.5
        observations = type(observations)(
            grid=patient.grid, t1c=observations.t1c, flair=observations.flair, pet=pet
        )
    bad = type(patient)(patient.anatomy, observations, "bad")
    with pytest.raises(InputError, match=message):
        validate_patient(bad)
    with pytest.raises(InputError, match=message):
        calibrate_patient(bad, tmp_path / "out", FAST_CONFIG)
    assert not (tmp_path / "out").exists()
    assert list(tmp_path.iterdir()) == []  # no temporary directory left either


def test_grids_that_disagree_raise_and_leave_no_output(tmp_path):
    patient = synthetic_patient(pet=False)
    shifted = type(patient.grid)(patient.grid.shape, patient.grid.affine + np.eye(4)[[0]] * 0)
    affine = patient.grid.affine.copy()
    affine[0, 3] += 3.0
    shifted = type(patient.grid)(patient.grid.shape, affine)
    directory = _write_patient(
        tmp_path / "patient", patient, flair=(patient.observations.flair, shifted)
    )
    with pytest.raises(InputError):
        calibrate_patient(directory, tmp_path / "out", FAST_CONFIG)
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["patient"]
    # From the command line: exit code 2 and a one-line message.
    assert main(["calibrate", str(directory), "--out", str(tmp_path / "out2")]) == 2
    assert not (tmp_path / "out2").exists()


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """One tiny end-to-end calibration with PET (SMC), shared by the output and report tests:
    5 mm scans fitted at 10 mm, the PDE corrected for its discretisation from the 5 mm grid."""
    patient = synthetic_patient(pet=True, shape=(24, 24, 24), spacing=5.0)
    config = FAST_CONFIG.replace(
        priors=FAST_PRIORS.replace(b=(0.6, 1.02)), plots=True, discretisation_correction=2
    )
    out = tmp_path_factory.mktemp("calibrated") / "out"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DiagnosticsWarning)
        result = calibrate_patient(patient, out, config)
    messages = [str(w.message) for w in caught if issubclass(w.category, DiagnosticsWarning)]
    return patient, config, result, out, messages


def test_end_to_end_products_are_consistent_with_the_posterior(calibrated):
    """Every product is written and agrees with the posterior it came from: summary statistics
    are those of posterior.nc's draws; the CTV is {P(u > u*) ≥ p} of the written probability map
    and its volume is the summary's; maps live on the input grid within [0, 1]; the stored ROI
    reads back as a patient on the ROI grid; figures are real PNG images."""
    patient, config, result, out, messages = calibrated
    summary = json.loads((out / "summary.json").read_text())
    assert summary == json.loads(json.dumps(result.summary))
    tree = xr.open_datatree(out / "posterior.nc", engine="h5netcdf")
    assert {"posterior", "log_likelihood", "posterior_predictive"} <= set(tree.children)
    for name in ("D_w", "rho", "seed_x", "b", "sigma"):
        draws = tree["posterior"][name].values.reshape(-1).astype(np.float64)
        stats = summary["parameters"][name]
        assert stats["mean"] == pytest.approx(draws.mean(), rel=1e-6)
        assert stats["q05"] == pytest.approx(np.quantile(draws, 0.05), rel=1e-6)
    n_voxels = tree["constant_data"]["voxel_index"].size
    assert tree["posterior_predictive"]["flair"].shape[-1] == n_voxels
    assert summary["brain_voxels"] == n_voxels

    probability, grid = load_nifti(out / "maps" / "infiltration_probability.nii.gz")
    ctv, ctv_grid = load_nifti(out / "maps" / "ctv.nii.gz")
    assert grid.same_as(patient.grid) and ctv_grid.same_as(patient.grid)
    np.testing.assert_array_equal(ctv.astype(bool), probability >= config.ctv_probability)
    assert summary["ctv_ml"] == pytest.approx(ctv.sum() * grid.voxel_volume_ml)
    assert summary["ctv_ml"] > 0 and summary["runtime_s"] > 0
    for name in (
        "density_mean",
        "density_sd",
        "flair_probability",
        "t1c_probability",
        "pet_expected",
    ):
        values, map_grid = load_nifti(out / "maps" / f"{name}.nii.gz")
        assert map_grid.same_as(patient.grid) and 0 <= values.min() and values.max() <= 1, name
    assert summary["flair_ml"] == pytest.approx(patient.observations.volumes_ml()["flair"])
    assert CalibrationConfig.from_dict(json.loads((out / "config.json").read_text())) == config
    correction = summary["discretisation_correction"]
    assert correction["fine_spacing_mm"] == pytest.approx(5.0)
    offset = np.load(out / "discretisation_offset.npy")
    assert offset.shape == result.roi.grid.shape
    assert correction["max_abs_offset"] == pytest.approx(np.abs(offset).max())
    # On a 10 mm grid a front of a few mm is far from resolved: the correction is large, and
    # the run says so (DiagnosticsWarning, `corrected_problem`).
    assert 0.25 < np.abs(offset).max() <= 1.0
    assert any("too coarse for the correction" in m for m in messages), messages
    roi = load_patient(out / "roi")
    assert roi.grid.same_as(result.roi.grid)
    np.testing.assert_array_equal(roi.observations.flair, result.roi.observations.flair)
    for figure in ("slices.png", "trace.png"):
        image = plt.imread(out / "figures" / figure)
        assert image.ndim == 3 and min(image.shape[:2]) > 100 and image.std() > 0, figure


def test_report_rerenders_a_stored_run_without_sampling(calibrated, tmp_path):
    """`bayestumor report` recomputes the density draws from the stored posterior draws: the
    maps and summary equal those written at calibration time (same draws, same solver, the same
    discretisation offset), into another directory or in place; a directory that is no run is a
    clear error (exit 2)."""
    _, _, _, out, _ = calibrated
    passed = json.loads((out / "diagnostics.json").read_text())["passed"]
    code = main(["report", str(out), "--out", str(tmp_path / "again"), "--no-plots"])
    assert code == (0 if passed else 3)
    again = tmp_path / "again"
    for name in ("density_mean", "density_sd", "infiltration_probability", "ctv", "pet_expected"):
        before, _ = load_nifti(out / "maps" / f"{name}.nii.gz")
        after, _ = load_nifti(again / "maps" / f"{name}.nii.gz")
        np.testing.assert_allclose(after, before, atol=1e-5, err_msg=name)
    first = json.loads((out / "summary.json").read_text())
    second = json.loads((again / "summary.json").read_text())
    assert second["parameters"] == first["parameters"]
    assert second["ctv_ml"] == pytest.approx(first["ctv_ml"])
    assert not (again / "figures").exists()
    assert (again / "posterior.nc").exists() and (again / "roi").is_dir()
    report_directory(again)  # in place: replaced atomically, stored run kept
    assert (again / "posterior.nc").exists() and (again / "summary.json").exists()
    # A run written before the `stepping` option (no such key) was solved with Heun steps, as
    # this one was: it re-renders to the same maps.
    stored = json.loads((again / "config.json").read_text())
    assert stored.pop("stepping") == "heun"
    (again / "config.json").write_text(json.dumps(stored))
    report_directory(again)
    before, _ = load_nifti(out / "maps" / "density_mean.nii.gz")
    np.testing.assert_allclose(
        load_nifti(again / "maps" / "density_mean.nii.gz")[0], before, atol=1e-5
    )

    not_a_run = tmp_path / "empty"
    not_a_run.mkdir()
    with pytest.raises(InputError, match=r"missing posterior\.nc"):
        report_directory(not_a_run)
    assert main(["report", str(not_a_run)]) == 2


@pytest.mark.parametrize("sampler", ["nuts", "blackjax-nuts"])
def test_single_chain_gradient_samplers_run_end_to_end(tmp_path, sampler):
    """One chain is a valid configuration (NumPyro then wants initial values without a chain
    axis; passing one silently broadcast the seed into a 3×3 matrix). Every draw is finite and
    inside the prior box."""
    config = FAST_CONFIG.replace(
        sampler=sampler, chains=1, warmup=10, draws=10, plots=False, likelihood="exact"
    )  # η (its MAP and sandwich) is not under test here
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiagnosticsWarning)
        result = calibrate_patient(synthetic_patient(), tmp_path / "out", config)
    d_w = result.datatree["posterior"]["D_w"].values
    assert d_w.shape == (1, 10)
    low, high = FAST_PRIORS.D_w
    assert np.all(np.isfinite(d_w)) and np.all((d_w >= low) & (d_w <= high))


def test_cli_calibrate_with_config_file(tmp_path):
    """Options given on the command line override the config file's (the boundary visibility
    and a free grey/white ratio among them, which then run end to end: the contour sd and the
    ratio are sampled and summarised)."""
    patient = synthetic_patient(pet=False)
    directory = _write_patient(tmp_path / "patient", patient)
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(FAST_CONFIG.replace(plots=False).to_dict()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiagnosticsWarning)
        code = main(
            [
                "calibrate",
                str(directory),
                "--out",
                str(tmp_path / "out"),
                "--config",
                str(config_file),
                "--seed",
                "3",
                "--stepping",
                "heun",
                "--visibility",
                "boundary",
                "--gm-ratio-free",
                "--seed-width-free",
                "--quiet",
            ]
        )
    assert code in (0, 3)  # 3: diagnostics failed (a tiny run), results still written
    written = json.loads((tmp_path / "out" / "config.json").read_text())
    assert written["seed"] == 3 and written["spacing_mm"] == 10.0 and written["stepping"] == "heun"
    assert written["priors"]["T"] == FAST_PRIORS.T
    assert written["priors"]["visibility"] == "boundary"
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    low, high = FAST_PRIORS.boundary_sd
    assert "sigma_alpha" not in summary["parameters"]
    assert low <= summary["parameters"]["boundary_sd"]["mean"] <= high
    assert written["priors"]["gm_ratio"] == list(GM_RATIO_RANGE)
    low, high = GM_RATIO_RANGE
    assert low <= summary["parameters"]["gm_ratio"]["mean"] <= high
    # The seed's width free: the growth is also reported from the reference seed (matched).
    assert summary["parameters"]["mu_rho_ref"]["mean"] > 0
    assert summary["parameters"]["mu_D_ref"]["mean"] > 0
    # Reported with the stress suite's model-form error for scans without PET, which widens
    # μ_ρ,ref's interval around the model's own and leaves μ_D,ref's (τ = 0 there) alone.
    tau = STRESS_SUITE_MODEL_ERROR["mri-only"]
    assert summary["model_error"]["data"] == "mri-only"
    assert summary["model_error"]["sd"] == {"mu_rho_ref": tau["mu_rho_ref"]}
    rho_ref = summary["parameters"]["mu_rho_ref"]
    assert rho_ref["model_error_sd"] == tau["mu_rho_ref"]
    own = rho_ref["without_model_error"]
    assert rho_ref["q05"] < own["q05"] and rho_ref["q95"] > own["q95"]
    assert "model_error_sd" not in summary["parameters"]["mu_D_ref"]
    diagnostics = json.loads((tmp_path / "out" / "diagnostics.json").read_text())
    assert diagnostics["model_error"] == summary["model_error"]


def test_cli_runs_nuts_chains_in_parallel_on_cpu_cores(tmp_path):
    """`bayestumor calibrate` in a fresh interpreter, as a user runs it: the command line gives
    JAX one device per core before anything starts its backend (importing BlackJAX would), so
    two NUTS chains run in parallel under `pmap` and give finite draws."""
    directory = _write_patient(tmp_path / "patient", synthetic_patient(pet=False))
    config_file = tmp_path / "config.json"
    config = FAST_CONFIG.replace(
        sampler="nuts", chains=2, warmup=20, draws=20, plots=False, likelihood="exact"
    )  # the chains' parallelism is under test, not η
    config_file.write_text(json.dumps(config.to_dict()))
    root = Path(__file__).resolve().parents[2]
    environment = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "bayestumor.cli",
            "calibrate",
            str(directory),
            "--out",
            str(tmp_path / "out"),
            "--config",
            str(config_file),
            "--quiet",
        ],
        cwd=root,
        capture_output=True,
        text=True,
        env={**environment, "PYTHONPATH": str(root)},
    )
    assert completed.returncode in (0, 3), completed.stderr  # 3: a tiny run's diagnostics
    diagnostics = json.loads((tmp_path / "out" / "diagnostics.json").read_text())
    expected = "parallel" if (os.cpu_count() or 1) >= 2 else "sequential"
    assert diagnostics["chain_method"] == expected
    assert diagnostics["device"].split(":")[0] == jax.default_backend()  # same environment
    tree = xr.open_datatree(tmp_path / "out" / "posterior.nc", engine="h5netcdf")
    d_w = tree["posterior"]["D_w"].values
    assert d_w.shape == (2, 20) and np.all(np.isfinite(d_w))
