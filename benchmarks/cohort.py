"""Cohort throughput: patients per hour with 1 and 2 local Dask workers, and scaling efficiency.

A synthetic cohort (`write_synthetic_cohort`, 32³ × 4 mm phantom) is calibrated twice from
scratch by `run_cohort`, on a local cluster of 1 and of 2 worker processes. Wall time covers
everything a user waits for: cluster start, JAX compilation in each worker, all patients and
the table. Scaling efficiency = (patients/hour with 2 workers) / (2 × with 1 worker); the
two runs must give identical results (per-patient seeds do not depend on the workers).
"Core share" is the tasks' CPU time over their wall time: about 1 when each worker had a core
of its own, lower when the machine is shared (the load average is printed and recorded).

The per-patient task is bayestumor's calibration (`calibrate_task`: surrogate forward where this
build has one, else the PDE; 8 mm voxels, one short chain), or with ``--task grid`` a stand-in
doing comparable CPU work: a weighted grid search over (D_w, ρ) with the PDE forward.

Usage::

    python benchmarks/cohort.py            # 8 patients
    python benchmarks/cohort.py --quick    # 4 patients
    python benchmarks/cohort.py --task grid  # the stand-in task
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bayestumor.cohort import calibrate_task, run_cohort, write_synthetic_cohort
from bayestumor.utils import atomic_path

RESULTS = Path(__file__).parent / "results" / "cohort.json"
CALIBRATION_SETTINGS = {"spacing_mm": 8.0, "chains": 1, "warmup": 50, "draws": 50, "plots": False}
"""Tiny calibration settings: enough to time the machinery, not for inference."""


def _has_surrogate() -> bool:
    """Whether this build has the neural surrogate forward model."""
    try:
        from bayestumor.forward.surrogate import SurrogateForward  # noqa: F401
    except ImportError:
        return False
    return True


def grid_search_task(
    patient_dir: Path, out_dir: Path, config: dict[str, Any], seed: int
) -> dict[str, Any]:
    """Stand-in calibration: PDE forward on a log-spaced (D_w, ρ) grid, weighted by FLAIR Dice.

    The seed sits at the lesion centre and T = 365 days; the weights exp(β·Dice) with β = 50
    play the posterior, jittered by `seed`. Returns the per-parameter summary of the contract.
    """
    import jax
    import jax.numpy as jnp

    from bayestumor.forward import GrowthParams, PDEForward
    from bayestumor.imaging import load_patient

    start, start_cpu = time.perf_counter(), time.process_time()
    patient = load_patient(patient_dir)
    flair = jnp.asarray(patient.observations.flair, jnp.float32)
    t_days = 365.0
    d_w, rho = np.meshgrid(
        np.geomspace(0.005, 0.09, config["grid"]), np.geomspace(0.003, 0.03, config["grid"])
    )
    forward = PDEForward.from_anatomy(patient.anatomy).sized_for(0.09 * t_days, 0.03 * t_days)
    seed_mm = jnp.asarray(patient.lesion_center_mm(), jnp.float32)

    @jax.jit
    def dice(params: jax.Array) -> jax.Array:
        growth = GrowthParams(D_w=params[0], rho=params[1], T=t_days, seed_mm=seed_mm)
        visible = (forward(growth) > 0.25).astype(jnp.float32)
        return 2 * jnp.sum(visible * flair) / (jnp.sum(visible) + jnp.sum(flair))

    grid = jnp.asarray(np.stack([d_w.ravel(), rho.ravel()], axis=1), jnp.float32)
    scores = np.asarray(jax.lax.map(dice, grid))
    weights = np.exp(50.0 * (scores - scores.max()))
    rng = np.random.default_rng(seed)
    draws = rng.choice(len(weights), size=2000, p=weights / weights.sum())
    jitter = rng.normal(0.0, 0.05, size=(2000, 2))
    samples = {
        "D_w": d_w.ravel()[draws] * np.exp(jitter[:, 0]),
        "rho": rho.ravel()[draws] * np.exp(jitter[:, 1]),
    }
    parameters = {
        name: {
            "mean": float(x.mean()),
            "sd": float(x.std()),
            "q05": float(np.quantile(x, 0.05)),
            "q95": float(np.quantile(x, 0.95)),
        }
        for name, x in samples.items()
    }
    np.savez(out_dir / "samples.npz", **samples)
    return {
        "parameters": parameters,
        "dice_max": float(scores.max()),
        "runtime_s": time.perf_counter() - start,
        "cpu_s": time.process_time() - start_cpu,
    }


def _core_share(table) -> float:
    """Mean CPU time / wall time of the patients' tasks: the share of a core each worker got.

    Near 1: workers had a core each; near 1/n: n workers shared one (a loaded machine). NaN
    when the task does not report ``cpu_s``.
    """
    if "cpu_s" not in table:
        return float("nan")
    return float((table["cpu_s"] / table["runtime_s"]).mean())


def main(args: argparse.Namespace) -> None:
    """Run the cohort with 1 and 2 workers, print the table and write the JSON results."""
    if args.task == "calibrate":
        from bayestumor.workflows import CalibrationConfig

        forward = "surrogate" if _has_surrogate() else "pde"
        config = CalibrationConfig(forward=forward, **CALIBRATION_SETTINGS).to_dict()
        task, task_name = calibrate_task, f"calibrate_patient ({forward} forward)"
    else:
        task, task_name = grid_search_task, "grid search (stand-in)"
        config = {"seed": 0, "grid": 6 if args.quick else 10}
    n_patients = 4 if args.quick else args.patients

    runs = []
    with tempfile.TemporaryDirectory() as scratch:
        cohort_dir = Path(scratch) / "cohort"
        write_synthetic_cohort(cohort_dir, n_patients)
        for n_workers in (1, 2):
            start = time.perf_counter()
            result = run_cohort(
                cohort_dir,
                Path(scratch) / f"out-{n_workers}",
                config,
                task=task,
                n_workers=n_workers,
                progress=False,
            )
            wall_s = time.perf_counter() - start
            assert not result.failed, result.table[["patient", "status", "error"]]
            runs.append(
                {
                    "n_workers": n_workers,
                    "wall_s": wall_s,
                    "patients_per_hour": 3600.0 * n_patients / wall_s,
                    "mean_patient_s": float(result.table["runtime_s"].mean()),
                    "core_share": _core_share(result.table),
                    "table": result.table.drop(columns=["runtime_s", "cpu_s"], errors="ignore"),
                }
            )
    identical = runs[0]["table"].equals(runs[1]["table"])
    efficiency = runs[1]["patients_per_hour"] / (2 * runs[0]["patients_per_hour"])

    print(f"cohort of {n_patients} synthetic patients (32³ × 4 mm), task: {task_name}")
    print(f"{'workers':>7} {'wall (s)':>9} {'patients/h':>11} {'s/patient':>10} {'core share':>11}")
    for run in runs:
        print(
            f"{run['n_workers']:>7} {run['wall_s']:>9.1f} {run['patients_per_hour']:>11.0f} "
            f"{run['mean_patient_s']:>10.2f} {run['core_share']:>11.2f}"
        )
    print(f"scaling efficiency 2 vs 1 worker: {efficiency:.2f}; identical results: {identical}")
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")

    record = {
        "benchmark": "cohort",
        "task": task_name,
        "config": config,
        "n_patients": n_patients,
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_1min": os.getloadavg()[0],
            "python": platform.python_version(),
        },
        "runs": [{k: v for k, v in run.items() if k != "table"} for run in runs],
        "scaling_efficiency": efficiency,
        "identical_results": identical,
    }
    with atomic_path(RESULTS) as tmp:
        tmp.write_text(json.dumps(record, indent=2))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 patients, 6 × 6 grid")
    parser.add_argument(
        "--task",
        choices=("calibrate", "grid"),
        default="calibrate",
        help="bayestumor's calibration (default; surrogate forward where it exists) or the "
        "grid-search stand-in",
    )
    parser.add_argument("--patients", type=int, default=8, help="cohort size (default 8)")
    main(parser.parse_args())
