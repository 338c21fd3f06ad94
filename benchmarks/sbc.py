"""Simulation-based calibration (Talts et al. 2018) of the whole inference on a tiny problem.

For each replicate: draw θ from the prior, simulate segmentations from the model's own
likelihood (Bernoulli(α(u)) at every brain voxel), sample the posterior, and record the rank of
the true θ among L thinned posterior draws. If the inference is correct the ranks are uniform on
{0, …, L}; the script prints a χ² uniformity p-value per parameter (ranks in 10 bins) and writes
``benchmarks/results/sbc.json`` (every 10 replicates; an interrupted run resumes).

Problem: a 12³ phantom at 10 mm, T and the imaging parameters fixed, free parameters D_w, ρ and
the seed (5 dimensions); posterior by tempered SMC (random-walk moves, all particles batched).

    .venv/bin/python benchmarks/sbc.py --replicates 100            # ~1 min per 10 replicates
    .venv/bin/python benchmarks/sbc.py --replicates 20 --particles 64   # smoke run
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import jax
import numpy as np
from scipy import stats

from bayestumor import PDEForward, make_phantom
from bayestumor.errors import DiagnosticsWarning
from bayestumor.forward import FixedStep
from bayestumor.inference import run_inference
from bayestumor.model import CalibrationProblem, ModelData, Priors, visibility_probability
from bayestumor.utils import atomic_path

PRIORS = Priors(
    D_w=(0.05, 0.3),
    rho=(0.01, 0.05),
    T=300.0,
    seed_sd_mm=8.0,
    u_c_t1c=0.7,
    u_c_flair=0.25,
    sigma_alpha=0.06,
)
PARAMETERS = ("D_w", "rho", "seed_x", "seed_y", "seed_z")


def base_problem(shape=(12, 12, 12), spacing_mm=10.0) -> CalibrationProblem:
    """Prior-only problem (placeholder observations) on the phantom; the seed prior is centred
    at a fixed point in white matter."""
    anatomy = make_phantom(shape, spacing_mm)
    forward = PDEForward.from_anatomy(anatomy, stepping=FixedStep(reaction_step=0.25))
    forward = forward.sized_for(*PRIORS.max_diffusion_and_reaction())
    index = np.flatnonzero(anatomy.brain_mask.reshape(-1)).astype(np.int32)
    low, high = anatomy.grid.world_bounds_mm()
    placeholder = np.zeros(index.size, np.float32)
    data = ModelData(
        voxel_index=jax.numpy.asarray(index),
        t1c=placeholder,
        flair=placeholder,
        pet=None,
        seed_center_mm=np.array([15.0, 5.0, 0.0], np.float32),
        seed_low_mm=np.asarray(low, np.float32),
        seed_high_mm=np.asarray(high, np.float32),
    )
    return CalibrationProblem(forward, data, PRIORS)


def replicate(problem: CalibrationProblem, key, particles: int, thin_to: int) -> dict:
    key_prior, key_data, key_post, key_thin = jax.random.split(key, 4)
    position = jax.tree.map(lambda v: v[0], problem.sample_prior(key_prior, 1))
    truth = problem.constrain(position)
    density = problem.brain_density(truth)
    keys = jax.random.split(key_data, 2)
    observed = {}
    for k, name in zip(keys, ("t1c", "flair"), strict=True):
        alpha = visibility_probability(density, truth[f"u_c_{name}"], truth["sigma_alpha"])
        observed[name] = jax.random.bernoulli(k, alpha).astype(np.float32)
    data = problem.data._replace(**observed)
    conditioned = CalibrationProblem(problem.forward, data, problem.priors, problem.epsilon)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiagnosticsWarning)
        result = run_inference(
            conditioned, "smc", key_post, smc_particles=particles, progress=False
        )
    ranks = {}
    for name in PARAMETERS:
        draws = np.asarray(result.datatree["posterior"][name]).reshape(-1)
        draws = np.asarray(jax.random.choice(key_thin, draws, (thin_to,), replace=False))
        ranks[name] = int(np.sum(draws < float(truth[name])))
    return {"ranks": ranks, "truth": {n: float(truth[n]) for n in PARAMETERS}}


def uniformity(results: list[dict], thin: int, bins: int, seed: int) -> dict:
    """χ² (binned) and KS (jittered, continuous) uniformity p-values of the ranks."""
    table = {}
    for name in PARAMETERS:
        ranks = np.array([r["ranks"][name] for r in results])
        counts = np.histogram(ranks, bins=bins, range=(0, thin + 1))[0]
        chi2_p = float(stats.chisquare(counts).pvalue)
        # (r + U) / (L + 1) is uniform on [0, 1] under H0, so the continuous KS test applies.
        jitter = np.random.default_rng(seed).uniform(size=ranks.size)
        ks_p = float(stats.kstest((ranks + jitter) / (thin + 1), "uniform").pvalue)
        table[name] = {"chi2_p": chi2_p, "ks_p": ks_p, "histogram": counts.tolist()}
    return table


def write_record(path: Path, record: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=2))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=100)
    parser.add_argument("--particles", type=int, default=128)
    parser.add_argument("--thin", type=int, default=99, help="posterior draws per rank (L)")
    parser.add_argument("--bins", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    if args.thin >= args.particles:
        parser.error("--thin must be smaller than --particles")
    path = args.out / "sbc.json"
    settings = {
        "particles": args.particles,
        "thin": args.thin,
        "seed": args.seed,
        "priors": PRIORS.to_dict(),
    }
    # Replicate i uses fold_in(key, i) whatever --replicates is, so a run resumes or extends exactly.
    results, seconds = [], 0.0
    if path.exists():
        previous = json.loads(path.read_text())
        if previous.get("settings") == settings:
            results, seconds = previous["replicate_results"], previous["seconds"]
            print(f"resuming after {len(results)} replicates from {path}")
    problem = base_problem()
    root = jax.random.key(args.seed)
    start = time.perf_counter() - seconds
    record = {}
    for i in range(len(results), args.replicates):
        results.append(replicate(problem, jax.random.fold_in(root, i), args.particles, args.thin))
        record = {
            "settings": settings,
            "replicates": len(results),
            "seconds": time.perf_counter() - start,
            "uniformity": uniformity(results, args.thin, args.bins, args.seed),
            "replicate_results": results,
        }
        if (i + 1) % 10 == 0 or i + 1 == args.replicates:
            write_record(path, record)
            print(f"{i + 1} replicates, {record['seconds']:.0f} s", flush=True)
    table = uniformity(results, args.thin, args.bins, args.seed)
    print(f"\n{'parameter':<10} {'chi2 p':>8} {'KS p':>8}  rank histogram ({args.bins} bins)")
    for name, row in table.items():
        print(f"{name:<10} {row['chi2_p']:>8.3f} {row['ks_p']:>8.3f}  {row['histogram']}")
    print(f"{len(results)} replicates; results in {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
