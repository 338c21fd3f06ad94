"""`bayestumor evaluate` end to end on tiny volumes: one patient, a cohort in PredictGBM's layout,
bad input refused with nothing written, and the command line.

Independent truths: plans and coverages recomputed here by brute force from voxel-centre
coordinates in mm (no distance transform), and the files as a user would read them back.
"""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from bayestumor import load_nifti, save_nifti
from bayestumor.cli import main
from bayestumor.errors import InputError
from bayestumor.imaging import Grid
from bayestumor.posterior import PREDICTGBM_LABELS, PREDICTGBM_RECURRENCE_LABELS
from bayestumor.workflows import evaluate_directory, find_evaluation_inputs

SHAPE = (26, 24, 22)
SPACING = (2.0, 2.0, 2.0)
CENTRE = np.array([13, 12, 11])


def grid_shifted_by(shift_mm: float) -> Grid:
    """2 mm voxels, the centre voxel at world (shift_mm, 0, 0)."""
    affine = np.diag([*SPACING, 1.0])
    affine[:3, 3] = -CENTRE * np.array(SPACING) + [shift_mm, 0.0, 0.0]
    return Grid(SHAPE, affine)


GRID = grid_shifted_by(0.0)


def distance_mm(point_voxel) -> np.ndarray:
    """Distance (mm) of every voxel centre from a voxel position, from the coordinates."""
    axes = np.indices(SHAPE).astype(float)
    return np.sqrt(sum(((axes[a] - point_voxel[a]) * SPACING[a]) ** 2 for a in range(3)))


def make_volumes(
    recurrence_offset_voxels: int, enhancing: int = 4, cavity: int | None = None, oedema: int = 2
):
    """Core: enhancing ball of 4 mm at the centre; recurrence: enhancing ball of 4 mm
    `recurrence_offset_voxels` (× 2 mm) along x, oedema ball of 4 mm on the other side 8 mm
    away, optionally a resection cavity label at the centre; prediction: highest at the
    recurrence's centre; brain: ball of 22 mm."""
    core = distance_mm(CENTRE) <= 4.0
    rec_centre = CENTRE + np.array([recurrence_offset_voxels, 0, 0])
    tumorseg = np.where(core, float(enhancing), 0.0).astype(np.float32)
    recurrence = np.zeros(SHAPE, np.float32)
    recurrence[distance_mm(CENTRE - np.array([4, 0, 0])) <= 4.0] = float(oedema)
    recurrence[distance_mm(rec_centre) <= 4.0] = float(enhancing)
    if cavity is not None:
        recurrence[core] = float(cavity)
    prediction = np.exp(-distance_mm(rec_centre) / 8.0).astype(np.float32)
    brain = (distance_mm(CENTRE) <= 22.0).astype(np.float32)
    return {
        "prediction": prediction,
        "tumorseg": tumorseg,
        "recurrence": recurrence,
        "brain_mask": brain,
    }


def write_patient(directory, volumes, prefix="", grids=None):
    directory.mkdir(parents=True, exist_ok=True)
    for role, volume in volumes.items():
        grid = (grids or {}).get(role, GRID)
        save_nifti(directory / f"{prefix}{role}.nii.gz", volume, grid)


def expected_standard(volumes):
    """The 15 mm plan by brute force: voxels within 15 mm of some core voxel, in the brain."""
    core_voxels = np.argwhere(volumes["tumorseg"] > 0)
    within = np.zeros(SHAPE, bool)
    for voxel in core_voxels:
        within |= distance_mm(voxel) <= 15.0
    return within & (volumes["brain_mask"] > 0)


def test_one_patient_end_to_end(tmp_path):
    """bayestumor's layout: every output file is written; the numbers match brute force; the
    prediction that points at the recurrence covers it fully at the standard plan's volume."""
    volumes = make_volumes(recurrence_offset_voxels=8)  # 16 mm away: the 15 mm plan misses some
    write_patient(tmp_path / "P01", volumes)
    out = tmp_path / "out"
    result = evaluate_directory(tmp_path / "P01", out)

    assert sorted(p.name for p in out.iterdir()) == [
        "coverage.png",
        "curves.csv",
        "evaluation.csv",
        "plans",
        "summary.json",
    ]
    table = pd.read_csv(out / "evaluation.csv")
    assert table["patient"].tolist() == ["P01"] and table["status"].tolist() == ["ok"]
    row = table.iloc[0]
    standard = expected_standard(volumes)
    enhancing = volumes["recurrence"] == 4
    assert row["plan_voxels"] == standard.sum()
    assert row["plan_ml"] == pytest.approx(standard.sum() * 0.008)
    assert row["recurrence_coverage_standard"] == pytest.approx(
        (enhancing & standard).sum() / enhancing.sum()
    )
    assert row["recurrence_coverage_standard"] < 1.0
    assert row["recurrence_coverage_model"] == 1.0
    assert row["missed_voxels_standard"] == (enhancing & ~standard).sum()
    assert row["less_tissue_for_full_coverage"] == "model"

    plan, grid = load_nifti(out / "plans" / "P01-standard_plan.nii.gz")
    assert grid == GRID
    np.testing.assert_array_equal(plan > 0, standard)
    model, _ = load_nifti(out / "plans" / "P01-model_plan.nii.gz")
    assert (model > 0).sum() == standard.sum()

    text = (out / "summary.json").read_text()
    assert "NaN" not in text
    summary = json.loads(text)
    assert summary["layout"] == "patient" and summary["n_evaluated"] == 1
    assert summary["settings"]["labels"] == {"necrotic": [1], "oedema": [2], "enhancing": [4]}
    assert summary["patients"]["P01"]["metrics"]["plan_voxels"] == standard.sum()
    assert summary["cohort"]["recurrence_coverage_model"]["mean"] == 1.0

    curves = pd.read_csv(out / "curves.csv")
    assert set(curves["plan"]) == {"model", "standard"}
    assert set(curves["target"]) == {"enhancing", "all"}
    assert curves.groupby(["plan", "target"])["coverage"].max().eq(1.0).all()
    assert (out / "coverage.png").stat().st_size > 10_000
    assert result.failed == {}


def test_predictgbm_cohort_of_two(tmp_path):
    """PredictGBM's layout: Patient-X/X-{tumorseg,recurrence,brain_mask}, predictions in
    PRED_DIR/X.nii.gz, labels 3 = enhancing and, in the recurrence, 4 = resection cavity (not
    counted). One row per patient; a sub-directory without a tumour segmentation is skipped."""
    inputs = tmp_path / "input"
    predictions = tmp_path / "predictions"
    predictions.mkdir()
    for patient, offset in (("00001", 5), ("00002", 9)):
        volumes = make_volumes(offset, enhancing=3, cavity=4)
        save_nifti(predictions / f"{patient}.nii.gz", volumes.pop("prediction"), GRID)
        write_patient(inputs / f"Patient-{patient}", volumes, prefix=f"{patient}-")
    (inputs / "notes").mkdir()

    found = find_evaluation_inputs(inputs / "Patient-00001", predictions)
    assert found.patient == "00001" and found.prediction == predictions / "00001.nii.gz"

    out = tmp_path / "out"
    result = evaluate_directory(
        inputs,
        out,
        predictions_dir=predictions,
        labels=PREDICTGBM_LABELS,
        recurrence_labels=PREDICTGBM_RECURRENCE_LABELS,
    )
    table = pd.read_csv(out / "evaluation.csv", dtype={"patient": str})
    assert table["patient"].tolist() == ["00001", "00002"]
    assert (table["status"] == "ok").all()
    # Recurrence 10 mm away lies inside the 15 mm plan; 18 mm away only partly.
    assert table["recurrence_coverage_standard"].tolist()[0] == 1.0
    assert table["recurrence_coverage_standard"].tolist()[1] < 1.0
    assert (table["recurrence_coverage_model"] == 1.0).all()
    # The cavity (label 4, at the core) is no tumour: "all" = oedema + enhancing balls only.
    volumes = make_volumes(5, enhancing=3, cavity=4)
    everything = np.isin(volumes["recurrence"], (2, 3))
    assert table["recurrence_ml_all"].tolist()[0] == pytest.approx(everything.sum() * 0.008)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["layout"] == "cohort" and summary["skipped_directories"] == ["notes"]
    assert summary["cohort"]["recurrence_coverage_model"] == {"mean": 1.0, "median": 1.0, "n": 2}
    assert sorted(p.name for p in (out / "plans").iterdir()) == [
        "00001-model_plan.nii.gz",
        "00001-standard_plan.nii.gz",
        "00002-model_plan.nii.gz",
        "00002-standard_plan.nii.gz",
    ]
    assert set(result.evaluations) == {"00001", "00002"}


def test_grids_that_disagree_are_refused_and_nothing_is_written(tmp_path):
    volumes = make_volumes(5)
    write_patient(tmp_path / "P01", volumes, grids={"recurrence": grid_shifted_by(1.0)})
    out = tmp_path / "out"
    with pytest.raises(InputError, match="differs from that of") as caught:
        evaluate_directory(tmp_path / "P01", out)
    message = str(caught.value)
    assert "recurrence.nii.gz" in message and "tumorseg.nii.gz" in message
    assert caught.value.path.name == "recurrence.nii.gz"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["P01"]


def test_labels_outside_the_convention_name_the_file(tmp_path):
    """A BraTS 2023 segmentation (3 = enhancing) read as BraTS 2021 is refused, naming the
    file and the expected labels, rather than read with its enhancing tumour dropped."""
    write_patient(tmp_path / "P01", make_volumes(5, enhancing=3))
    with pytest.raises(InputError, match=r"tumorseg.nii.gz: unknown labels \[3\]"):
        evaluate_directory(tmp_path / "P01", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli_one_patient_and_a_cohort_with_a_bad_patient(tmp_path, capsys):
    """Exit 0 and a table for one patient; named label conventions (bayestumor.imaging's
    LABEL_CONVENTIONS) read a GliODIL segmentation, which BraTS 2021 labels refuse (exit 2);
    exit 1 for a cohort with a refused patient, whose error is in the table while the other
    patient is scored."""
    cohort = tmp_path / "cohort"
    write_patient(cohort / "good", make_volumes(6))
    bad = make_volumes(6)
    bad["brain_mask"] = bad["brain_mask"] * 2.0
    write_patient(cohort / "bad", bad)

    assert main(["evaluate", str(cohort / "good"), "--out", str(tmp_path / "one")]) == 0
    printed = capsys.readouterr().out
    assert "good" in printed and "wrote" in printed

    # A GliODIL-convention patient (3 oedema, 4 enhancing) with the named convention.
    write_patient(tmp_path / "gliodil", make_volumes(6, oedema=3))
    argv = ["evaluate", str(tmp_path / "gliodil"), "--out", str(tmp_path / "g"), "--labels"]
    assert main([*argv, "gliodil"]) == 0
    summary = json.loads((tmp_path / "g" / "summary.json").read_text())
    assert summary["settings"]["labels"]["oedema"] == [3]
    assert main([*argv, "brats2021"]) == 2  # label 3 unknown there: refused
    assert main([*argv, "nonsense"]) == 2
    assert "unknown label convention 'nonsense'" in capsys.readouterr().err

    assert main(["evaluate", str(cohort), "--out", str(tmp_path / "all"), "--no-plans"]) == 1
    table = pd.read_csv(tmp_path / "all" / "evaluation.csv")
    assert table.set_index("patient")["status"].to_dict() == {"bad": "error", "good": "ok"}
    assert "brain mask must be binary" in table.set_index("patient").loc["bad", "error"]
    assert not (tmp_path / "all" / "plans").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["evaluate", "no-such-dir", "--out", "OUT"], "directory not found"),
        (["evaluate", "empty", "--out", "OUT"], "neither a patient directory"),
        (["evaluate", "P01", "--out", "OUT"], "differs from that of"),
        (["evaluate", "P01", "--out", "OUT", "--margin-mm", "-1"], "--margin-mm"),
    ],
)
def test_cli_bad_input_exits_2_and_writes_nothing(argv, message, tmp_path, monkeypatch, capsys):
    volumes = make_volumes(5)
    write_patient(tmp_path / "data" / "P01", volumes, grids={"brain_mask": grid_shifted_by(0.5)})
    (tmp_path / "data" / "empty").mkdir()
    monkeypatch.chdir(tmp_path / "data")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("bayestumor: error: ") and message in err
    assert "Traceback" not in err
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["P01", "empty"]


def test_cli_label_conventions_parse_and_help_stays_light():
    """`--labels` takes a name or role=labels; `bayestumor evaluate --help` imports no JAX."""
    from bayestumor.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(
        ["evaluate", "X", "--out", "O", "--labels", "necrotic=1+5,enhancing=4"]
    )
    assert args.labels == {"necrotic": (1, 5), "enhancing": (4,)}
    assert parser.parse_args(["evaluate", "X", "--out", "O", "--labels", "PredictGBM"]).labels == (
        "predictgbm"
    )
    with pytest.raises(SystemExit):
        parser.parse_args(["evaluate", "X", "--out", "O", "--labels", "core=1"])
    code = (
        "import sys\n"
        "from bayestumor.cli import main\n"
        "try:\n"
        "    main(['evaluate', '--help'])\n"
        "except SystemExit as stop:\n"
        "    assert stop.code == 0\n"
        "print(sorted(m for m in ('jax', 'matplotlib', 'pandas', 'scipy') if m in sys.modules))\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr
    assert "usage: bayestumor evaluate" in completed.stdout
    assert completed.stdout.strip().splitlines()[-1] == "[]"
