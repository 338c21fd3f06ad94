"""Benchmark: NUTS vs tempered SMC on a synthetic phantom patient, exact vs calibrated likelihood.

The problem is the package's full model: all eleven parameters free (D_w, ρ, T, seed x/y/z,
u_c T1c, u_c FLAIR, σ_α, b, σ) under the default priors, T1c + FLAIR + PET observed, the
default PDE stepping. Each row is one method on one grid:

- ``nuts`` / ``smc``: the samplers as `bayestumor calibrate` runs them — a MAP search, NUTS
  started from the Laplace approximation there, SMC tempered from it (widened);
- ``nuts-c2f``: coarse-to-fine, as `calibrate` runs it on grids finer than 4 mm: NUTS on the
  same data resampled to 4 mm, its draws carried to the row's grid by a Laplace-to-Laplace
  transport and importance weights (PSIS k̂ < 0.7; otherwise short fine chains follow) —
  `bayestumor.workflows.sample_coarse_to_fine`; its R-hat is the coarse chains', its ESS their
  bulk ESS times the relative weight ESS;
- ``smc-prior``: SMC tempered from the prior, the method before the Laplace reference (the
  baseline of the SMC speed-up; slow, so opt-in);

each under the ``calibrated`` likelihood (η estimated from the misfit at the MAP, the default
of `calibrate`) and, as the baseline ratio, the ``exact`` per-voxel one (η = 1). The wall time
includes the MAP search, η and compilation: what a user waits for.

Targets (the resolution issue; on a 2-core CPU): max R-hat < 1.01 and min bulk ESS > 400 over
the eleven parameters; NUTS under 3 min at 4 mm, 10 min at 2 mm, 60 min at 1 mm; SMC under
10 min at 4 mm, its posterior means within 0.5 NUTS posterior sd of NUTS's under the same
likelihood (``vs_nuts``, the largest |Δmean| / sd over the parameters). The SMC "ESS" is
min(weight ESS at λ = 1, distinct particles kept by the last resampling)
(`bayestumor.inference.diagnose`), not an autocorrelation ESS along the particle index, which
would ignore the particles' shared ancestry; NUTS's and SMC's ESS compare only roughly.

Tracked numbers (STYLE.md §9): wall time, ESS, max R-hat, ESS per second, gradient evaluations
per effective sample, SMC stages and log evidence, each parameter's 90 % interval next to the
truth. Prints a table and writes ``benchmarks/results/calibration.json``
(``calibration_quick.json`` with ``--quick``), after each row, atomically.

    .venv/bin/python benchmarks/calibration.py --quick          # 4 mm, short runs (~10 min)
    .venv/bin/python benchmarks/calibration.py --spacing 4      # the 4 mm targets
    .venv/bin/python benchmarks/calibration.py --spacing 4 --methods smc smc-prior
    .venv/bin/python benchmarks/calibration.py --spacing 2 --steppings split \
        --likelihoods calibrated --methods nuts nuts-c2f                     # 2 mm (~40 min)
    .venv/bin/python benchmarks/calibration.py                  # 4 mm and 2 mm (hours)
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import time
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from bayestumor import GrowthParams, Patient, PDEForward, make_phantom
from bayestumor.errors import DiagnosticsWarning
from bayestumor.forward import FixedStep, SplitStep
from bayestumor.inference import SamplerOptions, polished_map, run_inference
from bayestumor.model import CalibrationProblem, Priors, model_data_from_patient
from bayestumor.utils import atomic_path, use_cpu_cores_for_chains
from bayestumor.workflows import (
    CalibrationConfig,
    ImagingParams,
    calibrated_problem,
    sample_coarse_to_fine,
    simulate_patient,
)

FIELD_OF_VIEW_MM = 128.0
MARGIN_MM = 16.0
GROWTH = {"D_w": 0.1, "rho": 0.03, "T": 300.0, "seed_x": 10.0, "seed_y": 5.0, "seed_z": 0.0}
IMAGING = ImagingParams()
# The phantom's masks come from the density visibility, which has no contour-position sd:
# the eleven parameters the problem samples.
TRUTH = GROWTH | {k: v for k, v in IMAGING._asdict().items() if k != "boundary_sd"}
PRIORS = Priors()
RHAT_TARGET, ESS_TARGET = 1.01, 400.0
NUTS_WALL_TARGET_S = {4.0: 180.0, 2.0: 600.0, 1.0: 3600.0}
SMC_WALL_TARGET_S = {4.0: 600.0}
AGREEMENT_SD = 0.5
METHODS = {
    "nuts": ("nuts", {}),
    "nuts-c2f": ("nuts", {}),
    "smc": ("smc", {}),
    "smc-prior": ("smc", {"map_start": False}),
}
"""Row name → (registered sampler, `SamplerOptions` overrides); module docstring."""
COARSE_SPACING_MM = 4.0
"""The coarse grid of ``nuts-c2f`` (coarse-to-fine) rows."""
STEPPINGS = {"heun": FixedStep(), "split": SplitStep()}
"""The PDE's time stepping: today's default Heun, or Strang splitting with RKC diffusion."""


def patient_at(spacing_mm: float) -> Patient:
    """The synthetic patient at `spacing_mm` (grown with Heun steps), cropped to the lesion ±
    `MARGIN_MM`."""
    n = round(FIELD_OF_VIEW_MM / spacing_mm)
    anatomy = make_phantom((n, n, n), spacing_mm)
    params = GrowthParams(
        D_w=jnp.float32(GROWTH["D_w"]),
        rho=jnp.float32(GROWTH["rho"]),
        T=jnp.float32(GROWTH["T"]),
        seed_mm=jnp.array([GROWTH["seed_x"], GROWTH["seed_y"], GROWTH["seed_z"]]),
    )
    return simulate_patient(
        anatomy, params, IMAGING, jax.random.key(0), noisy=True, pet=True
    ).cropped(MARGIN_MM)


def problem_for(patient: Patient, stepping: str) -> CalibrationProblem:
    """The posterior of `patient` under the default priors, solved with `stepping` (η = 1)."""
    forward = PDEForward.from_anatomy(patient.anatomy, stepping=STEPPINGS[stepping]).sized_for(
        *PRIORS.max_diffusion_and_reaction()
    )
    return CalibrationProblem(forward, model_data_from_patient(patient), PRIORS)


def run_one(
    problem: CalibrationProblem,
    method: str,
    likelihood: str,
    options: SamplerOptions,
    seed: int,
    coarse: CalibrationProblem | None = None,
) -> dict:
    """One calibration as `calibrate` runs it (MAP, η, sampler), timed from the MAP search;
    ``nuts-c2f`` samples `coarse` (the same data on the coarse grid) and carries its draws to
    `problem`'s grid (`sample_coarse_to_fine`)."""
    sampler, overrides = METHODS[method]
    start = time.perf_counter()
    config = CalibrationConfig(
        likelihood=likelihood, progress=False, coarse_spacing_mm=COARSE_SPACING_MM
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiagnosticsWarning)
        if method == "nuts-c2f":
            problem, result, learning_rate = sample_coarse_to_fine(
                problem, coarse, config, options, jax.random.key(seed)
            )
        else:
            # As `calibrate`: one MAP search for η, which the sampler's own search starts from.
            mode = polished_map(problem)[0] if likelihood == "calibrated" else None
            problem, learning_rate = calibrated_problem(problem, config, mode)
            result = run_inference(
                problem, sampler, jax.random.key(seed), options, start=mode, **overrides
            )
    wall = time.perf_counter() - start
    diagnostics = result.diagnostics
    per_parameter = diagnostics["parameters"]
    smc = diagnostics["smc"]
    multilevel = diagnostics["multilevel"]
    if smc is not None:
        # Not an autocorrelation ESS over particles (shared ancestry); no R-hat for one cloud.
        ess, r_hat = smc["ess"], None
    elif multilevel is not None and multilevel["path"] == "importance":
        # The coarse chains' R-hat; their ESS times the relative weight ESS.
        ess, r_hat = diagnostics["effective_sample_size"], multilevel["coarse_r_hat_max"]
    else:
        ess = min(per_parameter[name]["ess_bulk"] or 0.0 for name in TRUTH)
        r_hat = max(per_parameter[name]["r_hat"] or np.inf for name in TRUTH)
        r_hat = r_hat if np.isfinite(r_hat) else None
    posterior = {name: np.asarray(result.datatree["posterior"][name]).ravel() for name in TRUTH}
    gradients = diagnostics["gradient_evaluations"]
    return {
        "method": method,
        "likelihood": likelihood,
        "learning_rate": learning_rate.value,
        "chains": 1 if smc else options.chains,
        "draws": options.smc_particles if smc else options.draws,
        "wall_s": wall,
        "sampling_s": diagnostics["seconds"],
        "ess": ess,
        "ess_kind": (
            "SMC: min(final weight ESS, distinct ancestors)"
            if smc
            else "NUTS: min bulk ESS over parameters"
        ),
        "max_r_hat": r_hat,
        "ess_per_s": ess / wall,
        "gradient_evaluations": gradients,
        "density_evaluations": diagnostics["density_evaluations"],
        "gradients_per_effective_sample": gradients / ess if ess and gradients else None,
        "divergences": diagnostics.get("divergences"),
        "diagnostics_passed": diagnostics["passed"],
        "per_parameter": {name: per_parameter[name] for name in TRUTH},
        "posterior_mean": {name: float(v.mean()) for name, v in posterior.items()},
        "posterior_sd": {name: float(v.std()) for name, v in posterior.items()},
        "posterior_90": {
            name: [float(q) for q in np.quantile(v, [0.05, 0.95])] for name, v in posterior.items()
        },
        "multilevel": multilevel,
        "smc_stages": smc and smc["stages"],
        "smc_log_evidence": smc and smc["log_marginal_likelihood"],
    }


def judge(row: dict, rows: list[dict]) -> None:
    """Add the row's targets (module docstring) and its ratios against the baselines in `rows`
    (which holds `row`): wall time against Heun NUTS with the exact likelihood; posterior means
    against Heun NUTS with the same likelihood (``vs_nuts``, the largest |Δmean| / sd over the
    parameters)."""

    def same(likelihood: str) -> dict | None:
        return next(
            (
                r
                for r in rows
                if r["spacing_mm"] == row["spacing_mm"]
                and (r["method"], r["stepping"], r["likelihood"]) == ("nuts", "heun", likelihood)
            ),
            None,
        )

    baseline = same("exact")
    reference = same(row["likelihood"]) or next(
        (
            r
            for r in rows
            if r["spacing_mm"] == row["spacing_mm"]
            and (r["method"], r["stepping"], r["likelihood"])
            == ("nuts", row["stepping"], row["likelihood"])
        ),
        None,
    )
    row["vs_nuts"] = (
        None
        if reference is None or reference is row
        else max(
            abs(row["posterior_mean"][name] - reference["posterior_mean"][name])
            / reference["posterior_sd"][name]
            for name in TRUTH
        )
    )
    row["wall_vs_exact_nuts"] = baseline and row["wall_s"] / baseline["wall_s"]
    spacing = row["spacing_mm"]
    if row["method"].startswith("nuts"):
        wall_target = NUTS_WALL_TARGET_S.get(spacing)
        met = row["max_r_hat"] is not None and row["max_r_hat"] < RHAT_TARGET
    else:
        wall_target = SMC_WALL_TARGET_S.get(spacing)
        met = row["vs_nuts"] is not None and row["vs_nuts"] <= AGREEMENT_SD
    row["wall_target_s"] = wall_target
    row["target_met"] = bool(
        met and row["ess"] > ESS_TARGET and wall_target is not None and row["wall_s"] < wall_target
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 mm only, short runs")
    parser.add_argument("--spacing", type=float, nargs="+", default=[4.0, 2.0], help="mm")
    parser.add_argument("--methods", nargs="+", default=["nuts", "smc"], choices=list(METHODS))
    parser.add_argument(
        "--likelihoods", nargs="+", default=["exact", "calibrated"], choices=["exact", "calibrated"]
    )
    parser.add_argument("--steppings", nargs="+", default=["heun"], choices=list(STEPPINGS))
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--draws", type=int, default=500, help="NUTS draws per chain")
    parser.add_argument("--particles", type=int, default=1024, help="SMC particles")
    parser.add_argument("--progress", action="store_true", help="samplers' progress bars")
    parser.add_argument("--seed", type=int, default=1, help="PRNG seed of the samplers")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    if args.quick:
        args.spacing, args.warmup, args.draws, args.particles = [4.0], 100, 100, 128
    use_cpu_cores_for_chains(args.chains)  # as `bayestumor calibrate` does
    options = SamplerOptions(
        chains=args.chains,
        warmup=args.warmup,
        draws=args.draws,
        smc_particles=args.particles,
        progress=args.progress,
    )
    path = args.out / ("calibration_quick.json" if args.quick else "calibration.json")
    record = {
        "truth": TRUTH,
        "seed": args.seed,
        "priors": PRIORS.to_dict(),
        "targets": {
            "r_hat_below": RHAT_TARGET,
            "ess_bulk_above": ESS_TARGET,
            "nuts_wall_s": NUTS_WALL_TARGET_S,
            "smc_wall_s": SMC_WALL_TARGET_S,
            "vs_nuts_sd": AGREEMENT_SD,
        },
        "machine": platform.platform(),
        "cpu_count": os.cpu_count(),
        "jax_devices": [str(d) for d in jax.devices()],
        "rows": [],
    }
    print(
        f"{'grid':>9} {'method':<9} {'step':<5} {'lik.':<10} {'η':>6} {'wall s':>8} "
        f"{'×exact':>6} {'ESS':>7} {'R-hat':>7} {'grad/ESS':>8} {'stages':>6} {'Δ/sd':>5} "
        f"{'target':>6}"
    )
    # Heun and the exact likelihood first, then the methods in the order asked for; every
    # row is judged again once its baselines are in.
    variants = sorted(
        itertools.product(args.steppings, args.likelihoods, args.methods),
        key=lambda v: (v[0] != "heun", v[1] != "exact", args.methods.index(v[2])),
    )
    for spacing in args.spacing:
        patient = patient_at(spacing)
        problems = {stepping: problem_for(patient, stepping) for stepping in args.steppings}
        coarse = {
            stepping: problem_for(patient.resampled(COARSE_SPACING_MM), stepping)
            for stepping in args.steppings
        }
        for stepping, likelihood, method in variants:
            problem = problems[stepping]
            row = run_one(
                problem, method, likelihood, options, seed=args.seed, coarse=coarse[stepping]
            )
            row |= {
                "spacing_mm": spacing,
                "stepping": stepping,
                "roi_shape": list(problem.forward.grid.shape),
            }
            record["rows"].append(row)
            for done in record["rows"]:
                judge(done, record["rows"])
            with atomic_path(path) as tmp:
                tmp.write_text(json.dumps(record, indent=2))
            print(
                f"{spacing:>6g} mm {method:<9} {stepping:<5} {likelihood:<10} "
                f"{row['learning_rate']:>6.3g} {row['wall_s']:>8.1f} "
                f"{_cell(row['wall_vs_exact_nuts'], 6, 2)} {row['ess']:>7.1f} "
                f"{_cell(row['max_r_hat'], 7, 4)} "
                f"{_cell(row['gradients_per_effective_sample'], 8, 1)} "
                f"{row['smc_stages'] or '':>6} {_cell(row['vs_nuts'], 5, 2)} "
                f"{'met' if row['target_met'] else 'no':>6}",
                flush=True,
            )
            for name in TRUTH:
                low, high = row["posterior_90"][name]
                print(f"{'':>18}{name:<12} true {TRUTH[name]:<8g} 90% [{low:.4g}, {high:.4g}]")
    print(f"wrote {path}")
    return 0


def _cell(value: float | None, width: int, digits: int) -> str:
    return f"{'–':>{width}}" if value is None else f"{value:>{width}.{digits}f}"


if __name__ == "__main__":
    raise SystemExit(main())
