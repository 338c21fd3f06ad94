"""Surrogate benchmark: surrogate vs PDE speed on the same region, accuracy, and a NUTS calibration.

In one run, on MNI152 crops around a right-frontal seed (the PDE and the surrogate solve the
same region, with the same anatomy):

1. seconds per simulation, surrogate vs PDE (`PDEForward`, fixed Heun steps, sized for the
   default priors), batch 1 and batch 64, on the 128 mm cube at 4 mm (32³) and at 2 mm (64³;
   the surrogate runs at 4 mm and interpolates), and per gradient (batch 1);
2. the accuracy table against fresh PDE solves on held-out seeds and unseen anatomy
   (`bayestumor surrogate check`);
3. wall time of a full surrogate NUTS calibration of a synthetic 2 mm patient (physical
   parametrisation: D_w, ρ, T, seed x/y/z, u_c T1c, u_c FLAIR, σ_α, b, σ — 11 parameters;
   2 chains; priors inside the training ranges, `PRIORS`), R-hat per parameter, and the PDE
   importance-reweighting check of its draws (PSIS k̂, weight ESS).

    python benchmarks/surrogate.py            # full run (tens of minutes on a 2-core CPU)
    python benchmarks/surrogate.py --quick    # smoke run: fewer samples, short chains

Writes benchmarks/results/surrogate.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from bayestumor.forward import GrowthParams, PDEForward
from bayestumor.forward.surrogate import (
    DEFAULT_MODEL,
    SurrogateForward,
    check_model,
    format_table,
    models_dir,
)
from bayestumor.imaging import load_mni152
from bayestumor.inference import format_refinement
from bayestumor.model import Priors
from bayestumor.utils import atomic_path, median_seconds, use_cpu_cores_for_chains

SEED_MM = np.array([26.0, 18.0, 24.0])  # right frontal white matter in MNI152
TRUTH = dict(D_w=0.05, rho=0.025, T=300.0)  # μ_D ≈ 3.9 mm, μ_ρ ≈ 2.7: front ≈ 20 mm out
# Physical priors whose μ_D = √(D_w T) and μ_ρ = √(ρ T) stay inside the surrogate's training
# ranges ([1, 30] mm, [1, 8]); the package defaults reach μ_ρ ≈ 14, where it would extrapolate.
PRIORS = Priors(parametrisation="physical", D_w=(0.02, 0.9), rho=(0.02, 0.064), T=(50.0, 1000.0))


def batch_params(n: int, key: jax.Array) -> GrowthParams:
    """`n` parameter sets around the truth: seeds jittered by 4 mm, D_w and ρ by ±20 %."""
    k1, k2, k3 = jax.random.split(key, 3)
    return GrowthParams(
        D_w=TRUTH["D_w"] * jnp.exp(0.2 * jax.random.normal(k1, (n,))),
        rho=TRUTH["rho"] * jnp.exp(0.2 * jax.random.normal(k2, (n,))),
        T=jnp.full(n, TRUTH["T"]),
        seed_mm=jnp.asarray(SEED_MM, jnp.float32) + 4.0 * jax.random.normal(k3, (n, 3)),
    )


@eqx.filter_jit
def _single(forward, params):
    return forward(params)


@eqx.filter_jit
def _surrogate_batch(forward, params):
    return forward.batched(params)


@eqx.filter_jit
def _mapped(forward, params):
    """`forward` over a batch with `lax.map`: each PDE solve runs its own step count (under
    `vmap` every solve would run the batch's largest)."""
    return jax.lax.map(forward, params)


@eqx.filter_jit
def _gradient(forward, theta):
    """Gradient of the total density w.r.t. (D_w, ρ, seed x/y/z)."""

    def total(theta):
        params = GrowthParams(theta[0], theta[1], TRUTH["T"], theta[2:])
        return jnp.sum(forward(params))

    return jax.grad(total)(theta)


def speed_rows(model: str, repeats: int) -> list[dict]:
    """Seconds per simulation of surrogate and PDE on the same 128 mm cube at 4 and 2 mm."""
    rows = []
    priors = PRIORS
    for spacing_mm, n in ((4.0, 32), (2.0, 64)):
        roi = load_mni152(spacing_mm).cropped_cube(SEED_MM, n)
        surrogate = SurrogateForward.from_anatomy(roi, model)
        pde = PDEForward.from_anatomy(roi).sized_for(*priors.max_diffusion_and_reaction())
        one = batch_params(1, jax.random.key(0))
        one = jax.tree.map(lambda x: x[0], one)
        many = batch_params(64, jax.random.key(1))
        row = {"grid": f"{n}³/{spacing_mm:g} mm", "pde_steps": pde.stable_steps(one)}
        row["surrogate_batch1_s"] = median_seconds(_single, surrogate, one, repeats=repeats)
        row["pde_batch1_s"] = median_seconds(_single, pde, one, repeats=repeats)
        row["surrogate_batch64_s"] = (
            median_seconds(_surrogate_batch, surrogate, many, repeats=repeats) / 64
        )
        row["pde_batch64_s"] = median_seconds(_mapped, pde, many, repeats=1) / 64

        start = jnp.array([TRUTH["D_w"], TRUTH["rho"], *SEED_MM], jnp.float32)
        row["surrogate_gradient_s"] = median_seconds(_gradient, surrogate, start, repeats=repeats)
        row["pde_gradient_s"] = median_seconds(_gradient, pde, start, repeats=max(1, repeats // 2))
        for kind in ("batch1", "batch64", "gradient"):
            row[f"speedup_{kind}"] = row[f"pde_{kind}_s"] / row[f"surrogate_{kind}_s"]
        rows.append(row)
    return rows


def format_speed(rows: list[dict]) -> str:
    lines = [
        "| region | PDE steps | surrogate b1 | PDE b1 | speed-up b1 | surrogate b64 | PDE b64 "
        "| speed-up b64 | surrogate grad | PDE grad | speed-up grad |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['grid']} | {r['pde_steps']} | {r['surrogate_batch1_s'] * 1e3:.1f} ms | "
            f"{r['pde_batch1_s'] * 1e3:.1f} ms | {r['speedup_batch1']:.1f}× | "
            f"{r['surrogate_batch64_s'] * 1e3:.2f} ms | {r['pde_batch64_s'] * 1e3:.1f} ms | "
            f"{r['speedup_batch64']:.1f}× | {r['surrogate_gradient_s'] * 1e3:.1f} ms | "
            f"{r['pde_gradient_s'] * 1e3:.1f} ms | {r['speedup_gradient']:.1f}× |"
        )
    return "\n".join(lines)


def synthetic_patient(spacing_mm: float, key: jax.Array):
    """A patient on the MNI152 anatomy at `spacing_mm` from the PDE with `TRUTH` (noisy scans)."""
    from bayestumor.workflows import ImagingParams, simulate_patient

    anatomy = load_mni152(spacing_mm).cropped_cube(SEED_MM, int(128 / spacing_mm))
    params = GrowthParams(**TRUTH, seed_mm=jnp.asarray(SEED_MM, jnp.float32))
    return simulate_patient(anatomy, params, ImagingParams(), key, noisy=True, pet=True)


def nuts_calibration(
    model: str, spacing_mm: float, chains: int, warmup: int, draws: int, refine_draws: int
) -> dict:
    """Surrogate NUTS on a synthetic patient, then PDE importance reweighting of a thinned set."""
    from bayestumor.inference import run_inference
    from bayestumor.model import CalibrationProblem, model_data_from_patient

    patient = synthetic_patient(spacing_mm, jax.random.key(3))
    roi = patient.cropped(margin_mm=20.0)
    priors = PRIORS
    data = model_data_from_patient(roi)
    surrogate = SurrogateForward.from_anatomy(roi.anatomy, model)
    surrogate.check_ranges(*priors.scale_free_ranges())  # warns where the prior leaves training
    problem = CalibrationProblem(forward=surrogate, data=data, priors=priors)
    started = time.perf_counter()
    result = run_inference(
        problem, "nuts", jax.random.key(0), chains=chains, warmup=warmup, draws=draws,
        progress=False,
    )  # fmt: skip
    wall = time.perf_counter() - started
    diagnostics = result.diagnostics
    r_hats = {name: v["r_hat"] for name, v in diagnostics["parameters"].items()}
    posterior = result.datatree["posterior"]
    summary = {
        name: [float(np.mean(posterior[name])), float(np.std(posterior[name]))]
        for name in diagnostics["parameters"]
    }
    output = {
        "roi": f"{'×'.join(map(str, roi.grid.shape))} at {spacing_mm:g} mm",
        "parameters": len(r_hats),
        "chains": chains,
        "warmup": warmup,
        "draws": draws,
        "wall_s": wall,
        "sampling_s": diagnostics["seconds"],
        "gradient_evaluations": diagnostics["gradient_evaluations"],
        "divergences": diagnostics["divergences"],
        "r_hat": r_hats,
        "max_r_hat": max(v for v in r_hats.values() if v is not None),
        "min_ess_bulk": diagnostics["min_ess_bulk"],
        "posterior_mean_sd": summary,
        "truth": {**TRUTH, "mu_D": float(np.sqrt(TRUTH["D_w"] * TRUTH["T"])),
                  "mu_rho": float(np.sqrt(TRUTH["rho"] * TRUTH["T"]))},
    }  # fmt: skip
    if refine_draws:
        from bayestumor.workflows import CalibrationConfig, check_against_pde

        started = time.perf_counter()
        config = CalibrationConfig(priors=priors, pde_check_draws=refine_draws)
        refinement = check_against_pde(problem, result, roi, config)
        output["refinement"] = {
            "draws": len(refinement.log_weights),
            "seconds": time.perf_counter() - started,
            "pareto_k": refinement.pareto_k,
            "ess": refinement.ess,
            "summary": refinement.summary,
            "table": format_refinement(refinement),
        }
    return output


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--quick", action="store_true", help="smoke run: small and short")
    parser.add_argument("--spacing", type=float, default=2.0, help="NUTS calibration grid, mm")
    parser.add_argument(
        "--parts",
        nargs="+",
        choices=("speed", "accuracy", "nuts"),
        default=["speed", "accuracy", "nuts"],
        help="which measurements to run (default: all)",
    )
    parser.add_argument("--out", default=Path(__file__).parent / "results" / "surrogate.json")
    args = parser.parse_args(argv)
    use_cpu_cores_for_chains(2)  # before JAX starts, as `bayestumor calibrate` does: 2 chains
    result = {
        "model": args.model,
        "machine": f"{platform.machine()} {platform.processor()}".strip(),
        "device": str(jax.devices()[0].device_kind),
        "cpu_cores": os.cpu_count(),
    }

    if "speed" in args.parts:
        rows = speed_rows(args.model, repeats=2 if args.quick else 5)
        result["speed"] = rows
        print("## Seconds per simulation, same region (median)\n")
        print(format_speed(rows))
    if "accuracy" in args.parts:
        accuracy = check_model(
            models_dir() / args.model, n_samples=8 if args.quick else 64, seed=999, progress=False
        )
        result["accuracy"] = accuracy
        print("\n## Accuracy against fresh PDE solves (held-out)\n")
        print(format_table(accuracy))
    if "nuts" in args.parts:
        result["nuts"] = run_nuts_part(args)
    out = Path(args.out)
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps(result, indent=1, default=float) + "\n")
    print(f"\nwrote {out}")
    return result


def run_nuts_part(args) -> dict:
    quick = args.quick
    chains, warmup, draws = (2, 30, 30) if quick else (2, 300, 300)
    calibration = nuts_calibration(
        args.model, 4.0 if quick else args.spacing, chains, warmup, draws,
        refine_draws=16 if quick else 100,
    )  # fmt: skip
    print(
        f"\n## Surrogate NUTS calibration ({calibration['roi']}, {calibration['parameters']} "
        f"parameters, {chains} chains × ({warmup} warm-up + {draws} draws))\n"
    )
    print(
        f"wall time {calibration['wall_s']:.0f} s (sampling {calibration['sampling_s']:.0f} s), "
        f"{calibration['gradient_evaluations']} gradients, {calibration['divergences']} "
        f"divergences, max R-hat {calibration['max_r_hat']:.3f}, min bulk ESS "
        f"{calibration['min_ess_bulk']:.0f}"
    )
    for name, (mean, sd) in calibration["posterior_mean_sd"].items():
        truth = calibration["truth"].get(name)
        extra = f" (truth {truth:.4g})" if truth is not None else ""
        print(f"  {name}: {mean:.4g} ± {sd:.3g}, R-hat {calibration['r_hat'][name]:.3f}{extra}")
    if "refinement" in calibration:
        print("\n## PDE importance reweighting of the surrogate draws\n")
        print(calibration["refinement"]["table"])
    return calibration


if __name__ == "__main__":
    main()
