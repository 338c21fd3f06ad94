"""Predicted coverage under misspecification, from Laplace approximations (no sampling).

For each stress patient (`bayestumor.workflows.stress_case`, calibrated at 4 mm) and arm
(`benchmarks/coverage.py`'s `ARMS`), stores what a likelihood design needs to be judged offline:
the polished MAP (`bayestumor.inference.polished_map`), the Hessians of the log-likelihood and of
the log prior there, the spatial-kernel score covariance J (ℓ = 10 mm) and the truth in the
samplers' unconstrained coordinates. The summary then predicts, for the exact likelihood and
the calibrated one (η from `sandwich_learning_rate`, as `calibrate` sets it), whether each 90 %
interval of μ_D, μ_ρ and the seed covers the truth: |MAP − truth| ≤ 1.645 sd of the Gaussian
with precision η H_lik + H_prior (eigenvalues taken absolute where not definite).

A *prediction*: it ignores the posterior's skew and the shift of its mean from the mode, which
`benchmarks/coverage.py` (NUTS) measures. Its use is to compare designs — bandwidths, η rules,
nuisance terms — on the same patients in seconds, from the stored cases; per case one MAP
search and 4·d forward/gradient evaluations (~1 min at 4 mm on this CPU).

    .venv/bin/python benchmarks/laplace_coverage.py --configurations pet-bias solver \\
        --replicates 3 --arms calibrated pet-gain
    .venv/bin/python benchmarks/laplace_coverage.py --summary-only
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from coverage import ARMS
from jax.flatten_util import ravel_pytree

from bayestumor.config import CalibrationConfig
from bayestumor.imaging import with_lesion_tissue
from bayestumor.inference import (
    coordinate_names,
    log_density_hessian,
    misfit_sandwich,
    polished_map,
    sandwich_learning_rate,
)
from bayestumor.utils import atomic_path
from bayestumor.workflows import (
    STRESS_CONFIGURATIONS,
    build_problem,
    region_of_interest,
    stress_case,
)

HEADLINE = ("log_mu[0]", "log_mu[1]", "seed_x", "seed_y", "seed_z")
"""Unconstrained coordinates judged: log μ_D, log μ_ρ and the seed."""
LENGTH_MM = 10.0
Z90 = 1.6449


def store_case(configuration: str, index: int, arm: str, out: Path, seed: int) -> None:
    """The MAP, Hessians, kernel score covariance and truth of one case (skipped if stored)."""
    path = out / f"{configuration}-{index:03d}-{arm}.npz"
    if path.exists():
        return
    started = time.perf_counter()
    key = jax.random.fold_in(
        jax.random.fold_in(jax.random.key(seed), STRESS_CONFIGURATIONS.index(configuration)), index
    )
    case = stress_case(configuration, key, calibration_spacing_mm=4.0)
    config = CalibrationConfig(
        spacing_mm=4.0,
        margin_mm=16.0,
        roi_growth_rounds=0,
        progress=False,
        plots=False,
        **ARMS[arm],
    )
    roi = region_of_interest(with_lesion_tissue(case.patient, config.lesion_tissue), config)
    problem = build_problem(roi, config)
    position, _ = polished_map(problem)
    likelihood, meat, voxels = misfit_sandwich(problem, position, LENGTH_MM)
    # The log density is the log prior plus the (η = 1) log-likelihood: the prior's curvature is
    # what remains.
    prior = -log_density_hessian(problem, position) - likelihood
    named = problem.constrain(position)
    sites = {s: named[s] for s in problem.site_names}
    for name in ("seed_x", "seed_y", "seed_z"):
        sites[name] = jnp.asarray(case.truth[name], jnp.float32)
    sites["log_mu"] = jnp.log(jnp.asarray([case.truth["mu_D"], case.truth["mu_rho"]], jnp.float32))
    truth = np.asarray(ravel_pytree(problem.unconstrain(sites))[0], np.float64)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as stream:
            np.savez(
                stream,
                likelihood=likelihood,
                prior=prior,
                meat=meat,
                names=np.array(coordinate_names(position)),
                mode=np.asarray(ravel_pytree(position)[0], np.float64),
                truth=truth,
                voxels=voxels,
            )
    print(
        f"{configuration:<11} #{index} {arm:<10} {time.perf_counter() - started:5.0f} s", flush=True
    )
    jax.clear_caches()


def predict(path: Path) -> dict:
    """Predicted 90 % coverage of `HEADLINE` under η = 1 and the calibrated η, and the
    z-scores (MAP − truth in sds of the Gaussian approximation)."""
    case = np.load(path)
    names = [str(n) for n in case["names"]]
    rate = sandwich_learning_rate(
        case["likelihood"], case["meat"], LENGTH_MM, int(case["voxels"]), names
    )
    error = case["mode"] - case["truth"]
    record = {"eta": rate.value}
    for label, eta in (("exact", 1.0), ("calibrated", rate.value)):
        curvature, vectors = np.linalg.eigh(eta * case["likelihood"] + case["prior"])
        variance = np.diag((vectors / np.abs(curvature)) @ vectors.T)
        z = {n: float(error[names.index(n)] / np.sqrt(variance[names.index(n)])) for n in HEADLINE}
        record[label] = {"z": z, "covered": {n: abs(v) <= Z90 for n, v in z.items()}}
    return record


CASE = re.compile(r"^(?P<configuration>.+)-(?P<index>\d{3})-(?P<arm>.+)$")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configurations", nargs="+", default=list(STRESS_CONFIGURATIONS))
    parser.add_argument("--replicates", type=int, default=3)
    parser.add_argument("--arms", nargs="+", default=["calibrated"], choices=list(ARMS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--summary-only", action="store_true")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "laplace_coverage"
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.summary_only:
        for index in range(args.replicates):
            for configuration in args.configurations:
                for arm in args.arms:
                    store_case(configuration, index, arm, args.out, args.seed)
    records = {path.stem: predict(path) for path in sorted(args.out.glob("*.npz"))}
    print(f"{'case':<26} {'η':>7}  calibrated z: " + " ".join(f"{n:>9}" for n in HEADLINE))
    groups: dict[tuple[str, str], list[dict]] = {}
    for name, record in records.items():
        z = record["calibrated"]["z"]
        print(f"{name:<26} {record['eta']:7.3g}  " + " ".join(f"{z[n]:9.1f}" for n in HEADLINE))
        parts = CASE.match(name)
        groups.setdefault((parts["configuration"], parts["arm"]), []).append(record)
    print("\npredicted 90 % coverage, exact (η = 1) | calibrated η, of " + ", ".join(HEADLINE))
    summary = {}
    for (configuration, arm), group in sorted(groups.items()):
        coverage = {
            label: [float(np.mean([r[label]["covered"][n] for r in group])) for n in HEADLINE]
            for label in ("exact", "calibrated")
        }
        summary[f"{configuration}/{arm}"] = {"cases": len(group), **coverage}
        cells = [" ".join(f"{f:.2f}" for f in coverage[label]) for label in coverage]
        print(f"{configuration:<11} {arm:<10} n={len(group):<3} {cells[0]} | {cells[1]}")
    with atomic_path(args.out / "summary.json") as tmp:
        tmp.write_text(json.dumps({"cases": records, "groups": summary}, indent=1))


if __name__ == "__main__":
    main()
