"""Benchmark: NUTS vs tempered SMC on a synthetic phantom patient at 4 mm and 2 mm.

Tracked numbers (STYLE.md §9): wall time, bulk ESS per second (minimum over the growth and
seed parameters), gradient evaluations per effective sample; plus the posterior mean of each
sampler next to the truth. Prints a table and writes ``benchmarks/results/calibration.json``.

    .venv/bin/python benchmarks/calibration.py --quick     # 4 mm only, short runs (~minutes)
    .venv/bin/python benchmarks/calibration.py             # 4 mm and 2 mm (hours on 2 CPU cores)
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
from bayestumor.errors import DiagnosticsWarning
from bayestumor.forward import FixedStep
from bayestumor.inference import CalibrationProblem, run_inference
from bayestumor.model import model_data_from_patient
from bayestumor.priors import Priors
from bayestumor.synthetic import ImagingParams, simulate_patient

FIELD_OF_VIEW_MM = 128.0
TRUTH = {"D_w": 0.1, "rho": 0.03, "seed_x": 10.0, "seed_y": 5.0, "seed_z": 0.0}
PRIORS = Priors(
    D_w=(0.02, 0.5), rho=(0.005, 0.1), T=300.0, u_c_t1c=0.7, u_c_flair=0.25, sigma_alpha=0.06
)


def problem_at(spacing_mm: float, margin_mm: float, reaction_step: float) -> CalibrationProblem:
    """The synthetic patient at `spacing_mm`, cropped to lesion ± `margin_mm`."""
    n = round(FIELD_OF_VIEW_MM / spacing_mm)
    anatomy = make_phantom((n, n, n), spacing_mm)
    params = GrowthParams(
        D_w=jnp.float32(TRUTH["D_w"]),
        rho=jnp.float32(TRUTH["rho"]),
        T=jnp.float32(300.0),
        seed_mm=jnp.array([TRUTH["seed_x"], TRUTH["seed_y"], TRUTH["seed_z"]]),
    )
    stepping = FixedStep(reaction_step=reaction_step)
    patient = simulate_patient(
        anatomy,
        params,
        ImagingParams(),
        jax.random.key(0),
        forward=PDEForward.from_anatomy(anatomy, stepping=stepping),
        noisy=True,
        pet=False,
    ).cropped(margin_mm)
    forward = PDEForward.from_anatomy(patient.anatomy, stepping=stepping).sized_for(
        *PRIORS.max_diffusion_and_reaction()
    )
    return CalibrationProblem(forward, model_data_from_patient(patient), PRIORS)


def run_one(problem, sampler, draws, warmup, particles, seed) -> dict:
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiagnosticsWarning)
        result = run_inference(
            problem,
            sampler,
            jax.random.key(seed),
            chains=2,
            warmup=warmup,
            draws=draws,
            smc_particles=particles,
            progress=False,
        )
    wall = time.perf_counter() - start
    diagnostics = result.diagnostics
    ess = min(diagnostics["parameters"][name]["ess_bulk"] or 0.0 for name in TRUTH)
    posterior = result.datatree["posterior"]
    gradients = diagnostics["gradient_evaluations"]
    return {
        "sampler": sampler,
        "wall_s": wall,
        "sampling_s": diagnostics["seconds"],
        "min_ess_bulk": ess,
        "ess_per_s": ess / wall,
        "gradient_evaluations": gradients,
        "density_evaluations": diagnostics["density_evaluations"],
        "gradients_per_effective_sample": gradients / ess if ess else None,
        "passed": diagnostics["passed"],
        "posterior_mean": {name: float(np.mean(posterior[name])) for name in TRUTH},
        "smc_stages": (diagnostics["smc"] or {}).get("stages"),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 mm only, short runs")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    if args.quick:
        settings = [(4.0, 12.0, 0.25, 100, 100, 128)]
    else:
        settings = [(4.0, 16.0, 0.05, 500, 500, 512), (2.0, 16.0, 0.05, 500, 500, 512)]
    rows = []
    for spacing, margin, reaction_step, draws, warmup, particles in settings:
        problem = problem_at(spacing, margin, reaction_step)
        for sampler in ("nuts", "smc"):
            row = run_one(problem, sampler, draws, warmup, particles, seed=1)
            row |= {"spacing_mm": spacing, "roi_shape": list(problem.forward.grid.shape)}
            rows.append(row)
            print(
                f"{spacing:>4g} mm {sampler:<5} wall {row['wall_s']:8.1f} s  "
                f"min ESS {row['min_ess_bulk']:7.1f}  ESS/s {row['ess_per_s']:7.3f}  "
                f"grad/ESS {row['gradients_per_effective_sample'] or float('nan'):9.1f}  "
                f"fwd-only evals {row['density_evaluations']:>8d}",
                flush=True,
            )
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / ("calibration_quick.json" if args.quick else "calibration.json")
    record = {
        "truth": TRUTH,
        "machine": platform.platform(),
        "jax_devices": [str(d) for d in jax.devices()],
        "rows": rows,
    }
    path.write_text(json.dumps(record, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
