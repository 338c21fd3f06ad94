"""``bayestumor predict-gbm``: PredictGBM's container contract on synthetic Patient-X folders."""

import json

import jax
import nibabel as nib
import numpy as np
import pytest

from bayestumor import make_phantom, save_nifti
from bayestumor.cli import main
from bayestumor.forward import FixedStep, PDEForward
from bayestumor.workflows import PREDICT_GBM_CONFIG, simulate_patient
from tests._calibration_problems import (
    FAST_PRIORS,
    REACTION_STEP,
    TRUE_IMAGING,
    true_params,
)

FAST_CONFIG = PREDICT_GBM_CONFIG.replace(
    spacing_mm=10.0,
    chains=1,
    warmup=10,
    draws=10,
    priors=FAST_PRIORS,
    stepping="heun",
    reaction_step=REACTION_STEP,
    sampler="smc",
    smc_particles=16,
    smc_mcmc_steps=2,
    roi_growth_rounds=0,
    progress=False,
    likelihood="exact",  # the output contract is under test, not η (its MAP and sandwich)
)


def _write_predict_gbm_patient(input_dir, patient_id, *, empty_tumour=False):
    """A PredictGBM folder: phantom tissues, a BraTS 2023 tumorseg (1 necrotic, 2 oedema,
    3 enhancing) from a simulated tumour, and a T1c *image* that must not be read as a mask."""
    anatomy = make_phantom((12, 12, 12), 10.0)
    forward = PDEForward.from_anatomy(anatomy, stepping=FixedStep(reaction_step=REACTION_STEP))
    patient = simulate_patient(
        anatomy, true_params(), TRUE_IMAGING, jax.random.key(0), forward=forward, pet=False
    )
    t1c, flair = patient.observations.t1c, patient.observations.flair
    tumorseg = np.where(t1c, 3, np.where(flair, 2, 0)).astype(np.int32)
    if empty_tumour:
        tumorseg[:] = 0
    folder = input_dir / f"Patient-{patient_id}"
    folder.mkdir(parents=True)
    grid = patient.grid
    for role, volume in (
        ("gm", anatomy.gm),
        ("wm", anatomy.wm),
        ("csf", anatomy.csf),
        ("tumorseg", tumorseg),
        ("t1c", 100.0 + 50.0 * anatomy.wm),  # an MRI image, not a segmentation
    ):
        save_nifti(folder / f"{patient_id}-{role}.nii.gz", volume, grid)
    return folder


@pytest.fixture(scope="module")
def predicted(tmp_path_factory):
    """One run of the command on a good and a bad patient (~90 s on two busy cores)."""
    root = tmp_path_factory.mktemp("predict_gbm")
    input_dir, output_dir = root / "input", root / "output"
    _write_predict_gbm_patient(input_dir, "00000")
    _write_predict_gbm_patient(input_dir, "00001", empty_tumour=True)
    config_file = root / "config.json"
    config_file.write_text(json.dumps(FAST_CONFIG.to_dict()))
    argv = ["predict-gbm", str(input_dir), str(output_dir), "--config", str(config_file)]
    code = main([*argv, "--keep-runs", str(root / "runs")])
    return input_dir, output_dir, config_file, code


@pytest.mark.slow
def test_output_follows_the_predict_gbm_contract(predicted):
    """Truth (PredictGBM's contract): X.nii.gz for Patient-X, on the input's grid (same shape
    and affine as X-tumorseg.nii.gz), float32 concentrations in [0, 1], higher in the lesion."""
    input_dir, output_dir, _, _ = predicted
    output = output_dir / "00000.nii.gz"
    assert output.is_file()
    reference = nib.load(input_dir / "Patient-00000" / "00000-tumorseg.nii.gz")
    image = nib.load(output)
    assert image.shape == reference.shape
    np.testing.assert_allclose(image.affine, reference.affine, atol=1e-6)
    assert image.get_data_dtype() == np.float32
    values = np.asarray(image.dataobj)
    assert values.dtype == np.float32
    assert 0.0 <= values.min() and values.max() <= 1.0
    lesion = np.asarray(reference.dataobj) > 0
    assert values[lesion].mean() > 0.5 > values[~lesion].mean()
    runs = output_dir.parent / "runs"
    assert sorted(p.name for p in runs.iterdir()) == ["00000"]  # --keep-runs: the full run
    assert (runs / "00000" / "summary.json").is_file()


@pytest.mark.slow
def test_a_failing_patient_is_recorded_and_the_others_are_written(predicted):
    """Truth: the empty tumorseg of Patient-00001 is unusable; its error is in errors.json, its
    output and any temporary file are absent, the other patient's output is there, exit 1."""
    _, output_dir, _, code = predicted
    assert code == 1
    errors = json.loads((output_dir / "errors.json").read_text())
    assert list(errors) == ["00001"]
    assert "empty tumour segmentation" in errors["00001"]
    assert sorted(p.name for p in output_dir.iterdir()) == ["00000.nii.gz", "errors.json"]


@pytest.mark.slow
def test_existing_outputs_are_kept_unless_overwrite(predicted, capsys):
    """Truth: a second run skips the written patient (its file untouched) and retries the
    failing one; the exit code still says a patient failed."""
    input_dir, output_dir, config_file, _ = predicted
    output = output_dir / "00000.nii.gz"
    before = output.stat().st_mtime_ns
    code = main(["predict-gbm", str(input_dir), str(output_dir), "--config", str(config_file)])
    assert code == 1
    assert output.stat().st_mtime_ns == before
    assert "0 written, 1 kept (existing), 1 failed" in capsys.readouterr().out


@pytest.mark.parametrize("make_input", ["missing", "no_patients"])
def test_a_bad_input_directory_exits_2(tmp_path, capsys, make_input):
    input_dir = tmp_path / "input"
    if make_input == "no_patients":
        (input_dir / "something-else").mkdir(parents=True)
    code = main(["predict-gbm", str(input_dir), str(tmp_path / "output")])
    assert code == 2
    assert "bayestumor: error:" in capsys.readouterr().err
    assert not (tmp_path / "output").exists()
