"""Benchmark: the posterior-mean density as a radiotherapy plan against the 15 mm standard plan,
scored on a synthetic recurrence.

Each patient is grown by the PDE (`PDEForward.density_at`, one solve) on the phantom anatomy
(`make_phantom`, 32³ voxels of 4 mm) to a first scan at T1 = 300 days and further to a
"recurrence" scan at T2 = T1 + ΔT (ΔT = 120 days); the growth parameters and seed vary per
patient (seeded RNG, ranges below). The first scan's segmentations are the thresholds
T1c = {u(T1) > u_c_t1c}, FLAIR = {u(T1) > u_c_flair} (no noise: data the calibration model did
not generate); the recurrence is the enhancing recurrence {u(T2) > u_c_t1c} minus the first
scan's core (label 4), plus {u(T2) > u_c_flair} minus both as oedema (label 2, counted in the
``_all`` target only).

Calibration on the first scan (`sample_patient`, writes nothing), small and fast on purpose:
tempered SMC (RMH kernel) with 64 particles and 5 MCMC steps per stage, the PDE at 4 mm with a
coarse reaction step (0.25 day, as the test suite's fast problems), T fixed at T1 (one scan
cannot tell T from D_w and ρ: `Priors`), the imaging parameters fixed at the truth, no PET; free:
D_w, ρ and the seed (5 parameters); ROI = lesion ± 20 mm, not grown. The posterior-mean density,
mapped back to the full grid (0 outside the ROI), is then scored as a plan with
`bayestumor.posterior.evaluate_plans` (PredictGBM's definitions): the standard plan is the first
scan's core dilated by 15 mm within the brain, the model plan the top-k voxels of the
prediction with k = the standard plan's size; reported per patient and as the mean: the
coverage of the enhancing recurrence by each plan at equal volume, and the least volume each
family (top-k of the prediction; core + margin) needs to cover all of it.

    .venv/bin/python benchmarks/plans.py --quick               # 1 patient, tiny run (smoke)
    .venv/bin/python benchmarks/plans.py                    # 2 patients (629 s on 2 shared cores)

Prints a table and writes ``benchmarks/results/plans.json`` (``--out``) atomically.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from bayestumor import GrowthParams, PDEForward, make_phantom
from bayestumor.config import CalibrationConfig, Priors
from bayestumor.errors import DiagnosticsWarning
from bayestumor.imaging import Observations, Patient, to_original_space
from bayestumor.posterior import evaluate_plans
from bayestumor.utils import atomic_path
from bayestumor.workflows import ImagingParams, sample_patient

SHAPE, SPACING_MM = (32, 32, 32), 4.0
T1_DAYS, DELTA_T_DAYS = 300.0, 120.0
D_W_RANGE = (0.05, 0.2)  # mm²/day
RHO_RANGE = (0.02, 0.04)  # 1/day
SEED_RANGE_MM = 15.0  # seed uniform in a cube of ± this around the phantom's centre
IMAGING = ImagingParams()
ENHANCING, OEDEMA = 4, 2  # BraTS 2021 labels, evaluate_plans' default convention
PRIORS = Priors(
    D_w=(0.02, 0.5),
    rho=(0.005, 0.1),
    T=T1_DAYS,
    u_c_t1c=IMAGING.u_c_t1c,
    u_c_flair=IMAGING.u_c_flair,
    sigma_alpha=IMAGING.sigma_alpha,
)
CONFIG = CalibrationConfig(
    sampler="smc",
    smc_particles=64,
    smc_mcmc_steps=5,
    spacing_mm=SPACING_MM,
    margin_mm=20.0,
    roi_growth_rounds=0,
    priors=PRIORS,
    stepping="heun",
    reaction_step=0.25,
    progress=False,
    plots=False,
)
QUICK_CONFIG = CONFIG.replace(smc_particles=16, smc_mcmc_steps=2)


def grow_patient(index: int, anatomy) -> tuple[Patient, np.ndarray, np.ndarray, dict]:
    """Patient `index`: the first scan, and the pre-operative and recurrence label maps."""
    rng = np.random.default_rng(index)
    truth = {
        "D_w": float(rng.uniform(*D_W_RANGE)),
        "rho": float(rng.uniform(*RHO_RANGE)),
        "seed_mm": [float(v) for v in rng.uniform(-SEED_RANGE_MM, SEED_RANGE_MM, 3)],
    }
    params = GrowthParams(
        D_w=jnp.float32(truth["D_w"]),
        rho=jnp.float32(truth["rho"]),
        T=jnp.float32(T1_DAYS + DELTA_T_DAYS),
        seed_mm=jnp.asarray(truth["seed_mm"], jnp.float32),
    )
    forward = PDEForward.from_anatomy(anatomy)
    forward = forward.with_max_steps(forward.stable_steps(params) + 1)
    first, second = np.asarray(
        forward.density_at(params, jnp.array([T1_DAYS, T1_DAYS + DELTA_T_DAYS]))
    )
    brain = anatomy.brain_mask
    t1c = (first > IMAGING.u_c_t1c) & brain
    flair = (first > IMAGING.u_c_flair) & brain
    preoperative = np.where(t1c, ENHANCING, np.where(flair, OEDEMA, 0)).astype(np.int16)
    enhancing = (second > IMAGING.u_c_t1c) & brain & ~t1c
    oedema = (second > IMAGING.u_c_flair) & brain & ~t1c & ~enhancing
    recurrence = np.where(enhancing, ENHANCING, np.where(oedema, OEDEMA, 0)).astype(np.int16)
    patient = Patient(anatomy, Observations(anatomy.grid, t1c=t1c, flair=flair), f"P{index:02d}")
    return patient, preoperative, recurrence, truth


def score_patient(index: int, anatomy, config: CalibrationConfig) -> dict:
    """Grow, calibrate on the first scan, and score both plans on the recurrence."""
    patient, preoperative, recurrence, truth = grow_patient(index, anatomy)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiagnosticsWarning)
        run = sample_patient(patient, config)
    calibration_s = time.perf_counter() - start
    mean_roi = np.asarray(run.inference.densities, np.float64).mean(axis=0)
    prediction = to_original_space(mean_roi, run.roi.grid, patient.grid)
    evaluation = evaluate_plans(
        prediction, preoperative, recurrence, anatomy.brain_mask, patient.grid
    )
    m = evaluation.metrics
    posterior = run.inference.datatree["posterior"]
    return {
        "patient": patient.name,
        "truth": truth,
        "posterior_mean": {name: float(np.mean(posterior[name])) for name in ("D_w", "rho")},
        "calibration_s": calibration_s,
        "diagnostics_passed": run.inference.diagnostics.get("passed"),
        "core_ml": m["core_ml"],
        "recurrence_ml": m["recurrence_ml"],
        "recurrence_ml_all": m["recurrence_ml_all"],
        "plan_ml": m["plan_ml"],
        "coverage_standard": m["recurrence_coverage_standard"],
        "coverage_model": m["recurrence_coverage_model"],
        "full_coverage_ml_standard": m["full_coverage_ml_standard"],
        "full_coverage_ml_model": m["full_coverage_ml_model"],
        "full_coverage_margin_mm": m["full_coverage_margin_mm"],
        "coverage_standard_all": m["recurrence_coverage_standard_all"],
        "coverage_model_all": m["recurrence_coverage_model_all"],
        "full_coverage_ml_standard_all": m["full_coverage_ml_standard_all"],
        "full_coverage_ml_model_all": m["full_coverage_ml_model_all"],
        "plans_overlap_dice": m["plans_overlap_dice"],
    }


COLUMNS = (  # title, key, width, format
    ("patient", "patient", 7, ""),
    ("core ml", "core_ml", 8, ".1f"),
    ("recur ml", "recurrence_ml", 8, ".1f"),
    ("plan ml", "plan_ml", 8, ".1f"),
    ("cov std", "coverage_standard", 8, ".3f"),
    ("cov model", "coverage_model", 9, ".3f"),
    ("full std ml", "full_coverage_ml_standard", 11, ".1f"),
    ("full model ml", "full_coverage_ml_model", 13, ".1f"),
    ("calib s", "calibration_s", 8, ".0f"),
)


def _row(values: dict) -> str:
    return " ".join(
        f"{'—' if values.get(key) is None else format(values[key], spec):>{width}}"
        for _, key, width, spec in COLUMNS
    )


def summarise(rows: list[dict]) -> dict:
    """Means over patients (NaN-aware: a family that never reaches full coverage is left out)."""
    keys = [key for _, key, _, _ in COLUMNS if key != "patient"] + [
        "coverage_standard_all",
        "coverage_model_all",
        "full_coverage_ml_standard_all",
        "full_coverage_ml_model_all",
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = {key: float(np.nanmean([row[key] for row in rows])) for key in keys}
    mean["patient"] = "mean"
    mean["model_less_tissue_for_full_coverage"] = int(
        sum(row["full_coverage_ml_model"] < row["full_coverage_ml_standard"] for row in rows)
    )
    return mean


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--patients", type=int, default=2, help="synthetic patients (2: ~10 min on 2 cores)"
    )
    parser.add_argument("--quick", action="store_true", help="1 patient, tiny SMC (smoke run)")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "plans.json"
    )
    args = parser.parse_args(argv)
    config = QUICK_CONFIG if args.quick else CONFIG
    n_patients = 1 if args.quick else args.patients
    anatomy = make_phantom(SHAPE, SPACING_MM)
    start = time.perf_counter()
    record = {
        "benchmark": "plans",
        "quick": args.quick,
        "settings": {
            "anatomy": f"make_phantom{SHAPE}, {SPACING_MM:g} mm",
            "t1_days": T1_DAYS,
            "delta_t_days": DELTA_T_DAYS,
            "D_w_range": D_W_RANGE,
            "rho_range": RHO_RANGE,
            "seed_range_mm": SEED_RANGE_MM,
            "imaging": IMAGING._asdict(),
            "calibration": config.to_dict(),
        },
        "machine": platform.platform(),
        "jax_devices": [str(d) for d in jax.devices()],
        "patients": [],
        "mean": None,
        "wall_s": None,
    }
    print("coverage of the enhancing recurrence at equal volume, and volume for full coverage")
    print(" ".join(f"{title:>{width}}" for title, _, width, _ in COLUMNS))
    for index in range(n_patients):
        row = score_patient(index, anatomy, config)
        record["patients"].append(row)
        print(_row(row), flush=True)
    record["mean"] = summarise(record["patients"])
    record["wall_s"] = time.perf_counter() - start
    print(_row(record["mean"]))
    print(
        f"model plan needs less tissue for full coverage in "
        f"{record['mean']['model_less_tissue_for_full_coverage']}/{n_patients} patients; "
        f"wall {record['wall_s']:.0f} s"
    )
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(record, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
