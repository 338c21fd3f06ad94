"""Benchmark: NUTS vs tempered SMC on a synthetic phantom patient at 4 mm and 2 mm.

The problem is the package's full model: all eleven parameters free (D_w, ρ, T, seed x/y/z,
u_c T1c, u_c FLAIR, σ_α, b, σ) under the default priors, T1c + FLAIR + PET observed, the
default PDE stepping. The issue's target on a 2-core CPU: every parameter with R-hat < 1.01
and bulk ESS > 400 at 4 mm in under 30 minutes.

Tracked numbers (STYLE.md §9): wall time (MAP start and compilation included), the effective
sample size, the maximum R-hat over all eleven parameters (NUTS), ESS per second, gradient
evaluations per effective sample; plus each sampler's posterior mean next to the truth. The ESS
is the minimum bulk ESS over the parameters for NUTS; for SMC it is min(weight ESS at λ = 1,
distinct particles kept by the last resampling) (`bayestumor.inference.diagnose`): an
autocorrelation ESS along the particle index ignores the particles' shared ancestry and would
flatter SMC. The two are comparable only roughly (the SMC one is an approximation). Prints
a table and writes ``benchmarks/results/calibration.json`` (``calibration_quick.json`` with
``--quick``), after each row, atomically.

    .venv/bin/python benchmarks/calibration.py --quick          # 4 mm, short runs (~10 min)
    .venv/bin/python benchmarks/calibration.py --spacing 4      # the target run (~30 min)
    .venv/bin/python benchmarks/calibration.py                  # 4 mm and 2 mm (hours)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from bayestumor import GrowthParams, PDEForward, make_phantom
from bayestumor.errors import DiagnosticsWarning
from bayestumor.inference import run_inference
from bayestumor.model import CalibrationProblem, Priors, model_data_from_patient
from bayestumor.utils import atomic_path, use_cpu_cores_for_chains
from bayestumor.workflows import ImagingParams, simulate_patient

FIELD_OF_VIEW_MM = 128.0
MARGIN_MM = 16.0
GROWTH = {"D_w": 0.1, "rho": 0.03, "T": 300.0, "seed_x": 10.0, "seed_y": 5.0, "seed_z": 0.0}
IMAGING = ImagingParams()
TRUTH = GROWTH | IMAGING._asdict()
PRIORS = Priors()
RHAT_TARGET, ESS_TARGET = 1.01, 400.0


def problem_at(spacing_mm: float) -> CalibrationProblem:
    """The synthetic patient at `spacing_mm`, cropped to the lesion ± `MARGIN_MM`."""
    n = round(FIELD_OF_VIEW_MM / spacing_mm)
    anatomy = make_phantom((n, n, n), spacing_mm)
    params = GrowthParams(
        D_w=jnp.float32(GROWTH["D_w"]),
        rho=jnp.float32(GROWTH["rho"]),
        T=jnp.float32(GROWTH["T"]),
        seed_mm=jnp.array([GROWTH["seed_x"], GROWTH["seed_y"], GROWTH["seed_z"]]),
    )
    patient = simulate_patient(
        anatomy, params, IMAGING, jax.random.key(0), noisy=True, pet=True
    ).cropped(MARGIN_MM)
    forward = PDEForward.from_anatomy(patient.anatomy).sized_for(
        *PRIORS.max_diffusion_and_reaction()
    )
    return CalibrationProblem(forward, model_data_from_patient(patient), PRIORS)


def run_one(problem, sampler, chains, draws, warmup, particles, seed, progress) -> dict:
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiagnosticsWarning)
        result = run_inference(
            problem,
            sampler,
            jax.random.key(seed),
            chains=chains,
            warmup=warmup,
            draws=draws,
            smc_particles=particles,
            progress=progress,
        )
    wall = time.perf_counter() - start
    diagnostics = result.diagnostics
    per_parameter = diagnostics["parameters"]
    if sampler == "smc":
        # Not an autocorrelation ESS over particles (shared ancestry); no R-hat for one cloud.
        ess, r_hat = diagnostics["smc"]["ess"], None
    else:
        ess = min(per_parameter[name]["ess_bulk"] or 0.0 for name in TRUTH)
        r_hat = max(per_parameter[name]["r_hat"] or np.inf for name in TRUTH)
        r_hat = r_hat if np.isfinite(r_hat) else None
    converged = sampler == "smc" or (r_hat is not None and r_hat < RHAT_TARGET)
    posterior = result.datatree["posterior"]
    gradients = diagnostics["gradient_evaluations"]
    return {
        "sampler": sampler,
        "chains": chains if sampler != "smc" else 1,
        "draws": draws if sampler != "smc" else particles,
        "wall_s": wall,
        "sampling_s": diagnostics["seconds"],
        "ess": ess,
        "ess_kind": (
            "SMC: min(final weight ESS, distinct ancestors)"
            if sampler == "smc"
            else "NUTS: min bulk ESS over parameters"
        ),
        "max_r_hat": r_hat,
        "target_met": bool(ess > ESS_TARGET and converged and wall < 1800.0),
        "ess_per_s": ess / wall,
        "gradient_evaluations": gradients,
        "density_evaluations": diagnostics["density_evaluations"],
        "gradients_per_effective_sample": gradients / ess if ess and gradients else None,
        "divergences": diagnostics.get("divergences"),
        "diagnostics_passed": diagnostics["passed"],
        "per_parameter": {name: per_parameter[name] for name in TRUTH},
        "posterior_mean": {name: float(np.mean(posterior[name])) for name in TRUTH},
        "posterior_90": {
            name: [float(q) for q in np.quantile(np.asarray(posterior[name]), [0.05, 0.95])]
            for name in TRUTH
        },
        "smc_stages": (diagnostics["smc"] or {}).get("stages"),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 mm only, short runs")
    parser.add_argument("--spacing", type=float, nargs="+", default=[4.0, 2.0], help="mm")
    parser.add_argument("--samplers", nargs="+", default=["nuts", "smc"])
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--draws", type=int, default=500, help="NUTS draws per chain")
    parser.add_argument("--particles", type=int, default=1024, help="SMC particles")
    parser.add_argument("--progress", action="store_true", help="samplers' progress bars")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    if args.quick:
        args.spacing, args.warmup, args.draws, args.particles = [4.0], 100, 100, 128
    use_cpu_cores_for_chains(args.chains)  # as `bayestumor calibrate` does
    path = args.out / ("calibration_quick.json" if args.quick else "calibration.json")
    record = {
        "truth": TRUTH,
        "priors": PRIORS.to_dict(),
        "targets": {"r_hat_below": RHAT_TARGET, "ess_bulk_above": ESS_TARGET, "wall_s": 1800},
        "machine": platform.platform(),
        "cpu_count": os.cpu_count(),
        "jax_devices": [str(d) for d in jax.devices()],
        "rows": [],
    }
    print(
        f"{'grid':>9} {'sampler':<6} {'wall s':>8} {'ESS':>8} {'max R-hat':>9} "
        f"{'ESS/s':>7} {'grad/ESS':>9} {'target':>6}"
    )
    for spacing in args.spacing:
        problem = problem_at(spacing)
        for sampler in args.samplers:
            row = run_one(
                problem,
                sampler,
                args.chains,
                args.draws,
                args.warmup,
                args.particles,
                seed=1,
                progress=args.progress,
            )
            row |= {"spacing_mm": spacing, "roi_shape": list(problem.forward.grid.shape)}
            record["rows"].append(row)
            with atomic_path(path) as tmp:
                tmp.write_text(json.dumps(record, indent=2))
            grad_per_ess = row["gradients_per_effective_sample"] or float("nan")
            print(
                f"{spacing:>6g} mm {sampler:<6} {row['wall_s']:>8.1f} {row['ess']:>8.1f} "
                f"{row['max_r_hat'] or float('nan'):>9.4f} {row['ess_per_s']:>7.3f} "
                f"{grad_per_ess:>9.1f} {'met' if row['target_met'] else 'no':>6}",
                flush=True,
            )
            for name in TRUTH:
                low, high = row["posterior_90"][name]
                print(f"{'':>18}{name:<12} true {TRUTH[name]:<8g} 90% [{low:.4g}, {high:.4g}]")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
