"""Benchmark: the patient-specific reduced-order model (`ReducedForward`) against the fine PDE.

The problem is benchmarks/calibration.py's: the eleven-parameter phantom patient at `--spacing`
(default 2 mm), the split-step PDE, the calibrated likelihood (η at the MAP, as `calibrate`).
In one run:

1. the fine MAP and the Laplace approximation there (seconds);
2. `--solves` fine solves at draws of that approximation widened `--widen`-fold, and the
   model's fit to them (seconds; modes kept);
3. accuracy at `--held-out` draws of the approximation itself, never solved for: the largest
   density error, the relative L2 error, and the log-likelihood difference from the PDE's
   (its sd decides the importance weights: relative ESS ≈ exp(−sd²) for normal log-weights);
4. seconds per log-density gradient, model and PDE, in the same process (median of 5), and
   their ratio (the surrogate issue's target: ≥ 20× at 2 mm, ≥ 100× at 1 mm);
5. NUTS with the model, then its draws importance-weighted by the fine PDE (`reweight`, the
   hybrid check): PSIS k̂, weight ESS, the largest |corrected − model mean| in posterior sds;
6. the wall time of 1 + 2 + 5 — what a calibration by this path costs — against
   benchmarks/calibration.py's ``nuts-c2f`` row on the same grid (512 s at 2 mm there).

    .venv/bin/python benchmarks/reduced.py                 # 2 mm (~6 min on a 2-core CPU)
    .venv/bin/python benchmarks/reduced.py --spacing 1     # 1 mm
    .venv/bin/python benchmarks/reduced.py --quick         # 8 mm smoke run

Prints a table and writes ``benchmarks/results/reduced.json`` atomically.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

sys.path.insert(0, str(Path(__file__).parent))
from calibration import TRUTH, patient_at, problem_for

from bayestumor.forward import ReducedForward
from bayestumor.inference import (
    SamplerOptions,
    curvature_covariance,
    polished_map,
    reweight,
    sample,
)
from bayestumor.model import batched
from bayestumor.utils import atomic_path, median_seconds
from bayestumor.workflows import CalibrationConfig, calibrated_problem

GRADIENT_RATIO_TARGET = {2.0: 20.0, 1.0: 100.0}
"""The surrogate issue's targets: a log-likelihood gradient this many times cheaper than the fine
PDE's."""


def laplace_draws(problem, mode, n: int, widen: float, seed: int):
    """`n` unconstrained positions ~ N(mode, widen² Σ), Σ the inverse negative Hessian there."""
    center, unravel = ravel_pytree(mode)
    root = np.linalg.cholesky(curvature_covariance(problem, mode))
    noise = np.random.default_rng(seed).standard_normal((n, center.size))
    flat = np.asarray(center) + widen * noise @ root.T
    return jax.vmap(unravel)(jnp.asarray(flat, center.dtype))


def growth(problem, positions):
    return jax.vmap(lambda p: problem.growth_params(problem.constrain(p)))(positions)


def run(args) -> dict:
    started = time.perf_counter()
    patient = patient_at(args.spacing)
    problem = problem_for(patient, "split")
    mode = polished_map(problem)[0]
    problem, learning_rate = calibrated_problem(problem, CalibrationConfig(progress=False), mode)
    laplace_s = time.perf_counter() - started

    t = time.perf_counter()
    training = laplace_draws(problem, mode, args.solves, args.widen, seed=0)
    reduced = ReducedForward.fit(problem.forward, growth(problem, training))
    fit_s = time.perf_counter() - t
    print(f"  MAP and Laplace {laplace_s:.0f} s; {reduced!r} in {fit_s:.0f} s", flush=True)

    held_out = laplace_draws(problem, mode, args.held_out, 1.0, seed=1)
    params = growth(problem, held_out)
    exact = np.asarray(batched(problem.forward)(params), np.float64)
    modelled = np.asarray(batched(reduced)(params), np.float64)
    fast = dataclasses.replace(problem, forward=reduced)
    log_likelihood = np.asarray(batched(fast.log_likelihood)(held_out)) - np.asarray(
        batched(problem.log_likelihood)(held_out)
    )
    print(f"  held out: max |Δu| {np.abs(modelled - exact).max():.2e}", flush=True)

    gradients = {}
    for name, which in (("model", fast), ("pde", problem)):
        gradient = jax.jit(jax.grad(which.log_density))
        gradients[name] = median_seconds(gradient, mode)

    t = time.perf_counter()
    options = SamplerOptions(
        chains=args.chains, warmup=args.warmup, draws=args.draws, progress=args.progress
    )
    # The raw chains: the maps and predictive scans `run_inference` would add are not needed.
    chains_run = sample(
        fast, "nuts", jax.random.key(args.seed), dataclasses.replace(options, start=mode)
    )
    sampling_s = time.perf_counter() - t
    print(f"  NUTS with the model {sampling_s:.0f} s", flush=True)
    t = time.perf_counter()
    positions = {
        name: np.asarray(values).reshape(-1, *np.shape(values)[2:])
        for name, values in chains_run.positions.items()
    }
    check = reweight(fast, problem, positions, list(TRUTH))
    check_s = time.perf_counter() - t
    shift = max(
        abs(check.summary[name][2] - check.summary[name][0]) / check.summary[name][1]
        for name in TRUTH
    )
    # Over the sampled (unconstrained) coordinates; no R-hat for one chain.
    coordinates = [
        column
        for values in chains_run.positions.values()
        for column in np.moveaxis(np.asarray(values).reshape(*np.shape(values)[:2], -1), -1, 0)
    ]  # each (chain, draw)
    r_hats = [float(az.rhat(c)) for c in coordinates] if args.chains > 1 else []
    ess_bulk = min(float(az.ess(c, method="bulk")) for c in coordinates)
    return {
        "spacing_mm": args.spacing,
        "roi_shape": list(problem.forward.grid.shape),
        "learning_rate": learning_rate.value,
        "solves": args.solves,
        "widen": args.widen,
        "modes": int(reduced.modes.shape[0]),
        "energy_left": reduced.energy_left,
        "laplace_s": laplace_s,
        "fit_s": fit_s,
        "held_out": args.held_out,
        "max_density_error": float(np.abs(modelled - exact).max()),
        "relative_l2_error": float(np.linalg.norm(modelled - exact) / np.linalg.norm(exact)),
        "log_likelihood_difference_sd": float(np.std(log_likelihood)),
        "log_likelihood_difference_max": float(
            np.abs(log_likelihood - log_likelihood.mean()).max()
        ),
        "gradient_model_s": gradients["model"],
        "gradient_pde_s": gradients["pde"],
        "gradient_ratio": gradients["pde"] / gradients["model"],
        "gradient_ratio_target": GRADIENT_RATIO_TARGET.get(args.spacing),
        "nuts": {"chains": args.chains, "warmup": args.warmup, "draws": args.draws},
        "sampling_s": sampling_s,
        "max_r_hat": max(r_hats) if r_hats else None,  # None for one chain
        "min_ess_bulk": ess_bulk,
        "pde_check_s": check_s,
        "pareto_k": check.pareto_k,
        "weight_ess": check.ess,
        "draws_checked": len(next(iter(positions.values()))),
        "corrected_shift_sd": shift,
        "calibration_wall_s": laplace_s + fit_s + sampling_s + check_s,
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spacing", type=float, default=2.0, help="fine grid, mm")
    parser.add_argument("--solves", type=int, default=240, help="fine solves the model is fit to")
    parser.add_argument("--widen", type=float, default=2.0, help="Laplace sd factor of the fit")
    parser.add_argument("--held-out", type=int, default=60, help="draws for the accuracy")
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--quick", action="store_true", help="8 mm, short chains (smoke run)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    if args.quick:
        args.spacing, args.solves, args.held_out, args.warmup, args.draws = 8.0, 60, 10, 50, 50
    # Chains one after the other: run in parallel (pmap over CPU devices) NumPyro's NUTS with
    # this model grew past 20 GB at 2 mm (4.4 GB after 2 × 40 iterations; with one device
    # 1.5 GB) — not investigated further yet.
    row = run(args)
    record = {
        "machine": platform.platform(),
        "jax_devices": [str(d) for d in jax.devices()],
        "row": row,
    }
    path = args.out / ("reduced_quick.json" if args.quick else "reduced.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=2))
    print(
        f"{row['spacing_mm']:g} mm ROI {row['roi_shape']}: {row['modes']} modes from "
        f"{row['solves']} solves (Laplace sd × {row['widen']:g}) in {row['fit_s']:.0f} s\n"
        f"  held out ({row['held_out']} Laplace draws): max |Δu| {row['max_density_error']:.2e}, "
        f"relative L2 {row['relative_l2_error']:.2e}, log-likelihood Δ sd "
        f"{row['log_likelihood_difference_sd']:.3f}\n"
        f"  gradient: model {row['gradient_model_s'] * 1e3:.1f} ms, PDE "
        f"{row['gradient_pde_s'] * 1e3:.1f} ms, ratio {row['gradient_ratio']:.1f}"
        + (f" (target ≥ {row['gradient_ratio_target']:g})" if row["gradient_ratio_target"] else "")
        + f"\n  NUTS with the model {row['sampling_s']:.0f} s, R-hat {row['max_r_hat'] or np.nan:.4f}, "
        f"ESS {row['min_ess_bulk']:.0f}; PDE check {row['pde_check_s']:.0f} s: PSIS k̂ "
        f"{row['pareto_k']:.2f}, weight ESS {row['weight_ess']:.0f} of {row['draws_checked']}, "
        f"corrected means within {row['corrected_shift_sd']:.2f} sd\n"
        f"  calibration by this path: {row['calibration_wall_s']:.0f} s (MAP and Laplace "
        f"{row['laplace_s']:.0f} s)"
    )
    print(f"wrote {path}")
    return record


if __name__ == "__main__":
    main()
