"""Forward-solver benchmark: today's Heun (`FixedStep`) and Strang splitting with an RKC diffusion
step (`SplitStep`) in one run, beside a plain-NumPy explicit-Euler version of the same
finite-volume scheme, on MNI152 crops at 4, 2 and 1 mm.

For each grid and method: steps and diffusion-operator applications per solve, seconds per
forward solve and per gradient (reverse mode, w.r.t. D_w, ρ, T and the seed), the relative L2
error of the density and of the gradient against one tight reference for both (`SplitStep` at
ρΔt ≤ 0.02, ≈ 300× more accurate than its default; on grids up to 64³ it is checked against
Heun at 1/18 of its stability limit and ρΔt ≤ 0.005, whose gradient takes tens of minutes at
128³ here); a vmapped batch of 8 (up to 64³) and XLA's memory estimate for Heun; the stencil's
achieved memory bandwidth beside a plain array copy of the same size (JAX and NumPy).

NumPy baseline: explicit Euler at Heun's stable step (fast, 5–15 % wrong); the speed-up at equal
accuracy is extrapolated from it (first order in Δt). With --measure-numpy (default for the full
run) it is also measured: Euler's step count is refined, from that extrapolation upwards, until
its error is at most `SplitStep`'s, and that run is timed; a run that would exceed
--numpy-budget-s is cut short, and its time over SplitStep's is reported as a measured lower
bound on the equal-accuracy speed-up.

    python benchmarks/forward.py            # 32³/4 mm, 64³/2 mm and 128³/1 mm (about an hour)
    python benchmarks/forward.py --quick    # 32³/4 mm and 64³/2 mm, NumPy extrapolated only

Writes benchmarks/results/forward.json (rewritten after every grid, so a long run leaves what it
has measured so far).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from bayestumor.forward import FixedStep, GrowthParams, PDEForward, SplitStep
from bayestumor.imaging import load_mni152
from bayestumor.utils import atomic_path, median_seconds

REFERENCE = SplitStep(reaction_step=0.02, diffusion_step=0.05)
SEED_MM = np.array([26.0, 18.0, 24.0])  # right frontal white matter in MNI152
PARAMS = dict(D_w=0.15, rho=0.015, T=600.0)  # realistic glioblastoma, ≈ 50 mm front travel


def numpy_problem(forward: PDEForward, params: GrowthParams) -> tuple:
    """The NumPy baseline's inputs (faces, seed, parameters), prepared outside its timing."""
    faces = [np.asarray(face) for face in forward.faces]
    u = np.asarray(forward.initial_density(jnp.asarray(params.seed_mm)))
    return faces, u, params


def numpy_euler(problem: tuple, steps: int) -> np.ndarray:
    """Explicit Euler on the same faces, seed and reaction term, in plain NumPy (float32)."""
    faces, u, params = problem
    a = np.float32(params.D_w * params.T)
    r = np.float32(params.rho * params.T)
    dt = np.float32(1.0 / steps)
    for _ in range(steps):
        div = np.zeros_like(u)
        for axis, face in enumerate(faces):
            jump = np.diff(u, axis=axis)
            inner = [slice(None)] * 3
            inner[axis] = slice(1, -1)
            flux = face[tuple(inner)] * jump
            lower = [slice(None)] * 3
            upper = [slice(None)] * 3
            lower[axis] = slice(0, -1)
            upper[axis] = slice(1, None)
            div[tuple(lower)] += flux
            div[tuple(upper)] -= flux
        u = u + dt * (a * div + r * u * (1 - u))
    return u


def temp_bytes(fn, *args) -> int | None:
    """XLA's estimate of the temporary memory a compiled call needs (bytes)."""
    analysis = jax.jit(fn).lower(*args).compile().memory_analysis()
    return None if analysis is None else int(analysis.temp_size_in_bytes)


def relative_l2(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def bandwidth(forward: PDEForward, repeats: int = 50) -> dict:
    """Achieved memory bandwidth of the diffusion stencil and of a plain copy, same array size.

    Stencil: u ← u + ε·∇·(k∇u), one fused pass that reads u and the three face arrays and writes
    u (5 arrays of n³ float32 moved). Copy: u ← c·u in JAX (2 arrays moved) and `np.copyto` in
    NumPy (2 arrays). Both JAX loops run inside one `fori_loop`, so dispatch is not timed.
    """
    u = forward.initial_density(jnp.asarray(SEED_MM, jnp.float32))
    volume_bytes = u.size * u.dtype.itemsize

    @jax.jit
    def stencil(u):
        step = lambda _, u: u + 1e-4 * forward.diffusion_operator(u)  # noqa: E731
        return jax.lax.fori_loop(0, repeats, step, u)

    @jax.jit
    def scale(u):
        return jax.lax.fori_loop(0, repeats, lambda _, u: u * 0.999, u)

    t_stencil = median_seconds(stencil, u) / repeats
    t_copy = median_seconds(scale, u) / repeats
    source = np.asarray(u)
    target = np.empty_like(source)
    np.copyto(target, source)
    started = time.perf_counter()
    for _ in range(repeats):
        np.copyto(target, source)
    t_numpy_copy = (time.perf_counter() - started) / repeats
    return {
        "stencil_ms": 1e3 * t_stencil,
        "stencil_GBps": 5 * volume_bytes / t_stencil / 1e9,
        "jax_copy_GBps": 2 * volume_bytes / t_copy / 1e9,
        "numpy_copy_GBps": 2 * volume_bytes / t_numpy_copy / 1e9,
    }


def matched_numpy_euler(
    problem: tuple, u_ref, first: tuple[int, float, float], target: float, budget_s: float
) -> dict:
    """Plain-NumPy Euler refined until its error against `u_ref` is at most `target`, timed.

    Starts from the first-order extrapolation of the measured (steps, error, seconds) triple
    `first`, with a 10 % margin, and refines the same way until the error is reached (at most
    four runs). A run predicted to take longer than `budget_s` is cut to the steps that fit: it
    is then less accurate than `target`, and the speed-up it gives is a measured lower bound.
    """
    steps, error, seconds = first
    per_step = seconds / steps
    runs = []
    while error > target and len(runs) < 4:
        steps = math.ceil(1.1 * steps * error / target)
        if steps * per_step > budget_s:
            steps = int(budget_s / per_step)
            print(f"    numpy euler cut to {steps} steps (budget {budget_s:.0f} s)", flush=True)
        started = time.perf_counter()
        u = numpy_euler(problem, steps)
        seconds = time.perf_counter() - started
        error = relative_l2(u, u_ref)
        per_step = seconds / steps
        runs.append({"steps": steps, "seconds": seconds, "rel_l2_error": error})
        print(f"    numpy euler {steps} steps: {seconds:.1f} s, error {error:.2e}", flush=True)
        if steps * per_step >= 0.99 * budget_s and error > target:
            break
    matched = runs[-1] if runs and runs[-1]["rel_l2_error"] <= target else None
    return {"numpy_refinement_runs": runs, "numpy_matched": matched}


def method_timings(
    forward: PDEForward, params: GrowthParams, weights, theta, timed: bool = True
) -> dict:
    """Steps, operator applications, seconds per solve and per gradient, and the jitted calls
    (with `timed` False only the calls: for the reference, minutes at 1 mm)."""

    def solve(theta):
        return forward(GrowthParams(D_w=theta[0], rho=theta[1], T=theta[2], seed_mm=theta[3:]))

    def loss(theta):
        return jnp.sum(solve(theta) * weights)

    forward_jit = jax.jit(solve)
    grad_jit = jax.jit(jax.grad(loss))
    if not timed:
        return {"steps": forward.stable_steps(params), "_solve": forward_jit, "_grad": grad_jit}
    t_forward = median_seconds(forward_jit, theta, repeats=3)
    t_grad = median_seconds(grad_jit, theta, repeats=3)
    return {
        "steps": forward.stable_steps(params),
        "operator_applications": forward.operator_applications(params),
        "forward_s": t_forward,
        "gradient_s": t_grad,
        "gradient_over_forward": t_grad / t_forward,
        "_solve": forward_jit,
        "_grad": grad_jit,
        "_loss": loss,
    }


def bench_grid(n: int, spacing_mm: float, measure_numpy: bool, numpy_budget_s: float) -> dict:
    anatomy = load_mni152(spacing_mm).cropped_cube(SEED_MM, n)
    params = GrowthParams(**PARAMS, seed_mm=SEED_MM)
    base = PDEForward.from_anatomy(anatomy)
    size = (1.1 * PARAMS["D_w"] * PARAMS["T"], 1.1 * PARAMS["rho"] * PARAMS["T"])
    weights = jnp.asarray(anatomy.wm > 0.5, jnp.float32)
    theta = jnp.asarray([PARAMS["D_w"], PARAMS["rho"], PARAMS["T"], *SEED_MM], jnp.float32)
    print(f"{n}³/{spacing_mm:g} mm", flush=True)

    heun = method_timings(base.sized_for(*size), params, weights, theta)
    print(f"  heun: {heun['forward_s']:.3f} s, gradient {heun['gradient_s']:.3f} s", flush=True)
    split_forward = base.with_stepping(SplitStep()).sized_for(*size)
    split = method_timings(split_forward, params, weights, theta)
    print(f"  split: {split['forward_s']:.3f} s, gradient {split['gradient_s']:.3f} s", flush=True)

    forward = base.sized_for(*size)
    row = {"grid": f"{n}³/{spacing_mm:g} mm"}
    batch = GrowthParams(
        D_w=PARAMS["D_w"] * jnp.linspace(0.9, 1.1, 8),
        rho=PARAMS["rho"] * jnp.linspace(1.1, 0.9, 8),
        T=jnp.full(8, PARAMS["T"]),
        seed_mm=jnp.tile(jnp.asarray(SEED_MM, jnp.float32), (8, 1)),
    )
    if n <= 64:  # minutes at 128³ on this CPU; Heun-only information
        t_batch = median_seconds(jax.jit(jax.vmap(forward)), batch, repeats=1)
        row["batch8_s"] = t_batch
        row["batch8_per_sample_over_forward"] = t_batch / 8 / heun["forward_s"]

    # One reference for both methods: SplitStep at 1/17 of the default step (second order:
    # ≈ 300× smaller error), checked against Heun at 1/18 of its stability limit where that
    # is affordable (the Heun reference's gradient takes tens of minutes at 128³ here).
    reference = base.with_stepping(REFERENCE).sized_for(*size)
    reference_run = method_timings(reference, params, weights, theta, timed=False)
    u_ref = np.asarray(reference_run["_solve"](theta))
    g_ref = np.asarray(reference_run["_grad"](theta))
    row["reference_steps"] = reference_run["steps"]
    if n <= 64:
        heun_reference = base.with_stepping(FixedStep(safety=0.05, reaction_step=0.005))
        heun_reference = heun_reference.sized_for(*size)
        heun_run = method_timings(heun_reference, params, weights, theta, timed=False)
        row["reference_vs_heun_reference_rel_l2"] = relative_l2(heun_run["_solve"](theta), u_ref)
        row["reference_vs_heun_reference_gradient_rel_l2"] = relative_l2(
            heun_run["_grad"](theta), g_ref
        )
    print(f"  reference: {reference_run['steps']} steps", flush=True)

    problem = numpy_problem(forward, params)
    started = time.perf_counter()
    euler = numpy_euler(problem, heun["steps"])
    t_numpy = time.perf_counter() - started

    row.update({"numpy_euler_s": t_numpy, "numpy_euler_steps": heun["steps"]})
    for name, run in (("heun", heun), ("split", split)):
        public = {key: value for key, value in run.items() if not key.startswith("_")}
        row.update({f"{name}_{key}": value for key, value in public.items()})
        row[f"{name}_rel_l2_error"] = relative_l2(run["_solve"](theta), u_ref)
        gradient = np.asarray(run["_grad"](theta))
        row[f"{name}_gradient_rel_l2_error"] = relative_l2(gradient, g_ref)
        # Per parameter group, as the tests check them (physical, seed position).
        row[f"{name}_gradient_physical_rel_l2_error"] = relative_l2(gradient[:3], g_ref[:3])
        row[f"{name}_gradient_seed_rel_l2_error"] = relative_l2(gradient[3:], g_ref[3:])
    # Keys of the Heun-only benchmark, kept: today's default method.
    row.update(
        {
            "steps": heun["steps"],
            "forward_s": heun["forward_s"],
            "gradient_s": heun["gradient_s"],
            "gradient_over_forward": heun["gradient_over_forward"],
            "speedup_vs_numpy": t_numpy / heun["forward_s"],
            "voxel_updates_per_s": n**3 * heun["steps"] / heun["forward_s"],
            "forward_temp_MiB": (temp_bytes(heun["_solve"], theta) or 0) / 2**20,
            "gradient_temp_MiB": (temp_bytes(jax.grad(heun["_loss"]), theta) or 0) / 2**20,
            "split_gradient_temp_MiB": (temp_bytes(jax.grad(split["_loss"]), theta) or 0) / 2**20,
            "split_speedup_forward": heun["forward_s"] / split["forward_s"],
            "split_speedup_gradient": heun["gradient_s"] / split["gradient_s"],
            "numpy_euler_rel_l2_error": relative_l2(euler, u_ref),
        }
    )
    row["speedup_vs_numpy_split"] = t_numpy / split["forward_s"]
    # Euler is first order: reaching an error e needs error/e × its steps. Extrapolated.
    for name in ("heun", "split"):
        ratio = row["numpy_euler_rel_l2_error"] / row[f"{name}_rel_l2_error"]
        key = f"{name}_speedup_vs_numpy_at_equal_accuracy_extrapolated"
        row[key] = t_numpy * ratio / row[f"{name}_forward_s"]
    row["speedup_vs_numpy_at_equal_accuracy_extrapolated"] = row[
        "heun_speedup_vs_numpy_at_equal_accuracy_extrapolated"
    ]
    row.update(bandwidth(forward))
    if measure_numpy:
        target = row["split_rel_l2_error"]
        first = (heun["steps"], row["numpy_euler_rel_l2_error"], t_numpy)
        row.update(matched_numpy_euler(problem, u_ref, first, target, numpy_budget_s))
        if row["numpy_matched"] is not None:
            row["split_speedup_vs_numpy_at_equal_accuracy_measured"] = (
                row["numpy_matched"]["seconds"] / split["forward_s"]
            )
        elif row["numpy_refinement_runs"]:
            # NumPy's longest run is still less accurate than SplitStep: its time over
            # SplitStep's is a measured lower bound on the equal-accuracy speed-up.
            longest = row["numpy_refinement_runs"][-1]
            row["split_speedup_vs_numpy_at_equal_accuracy_measured_lower_bound"] = (
                longest["seconds"] / split["forward_s"]
            )
    return row


COLUMNS = [
    ("grid", "{}"),
    ("heun_steps", "{}"),
    ("split_steps", "{}"),
    ("heun_operator_applications", "{}"),
    ("split_operator_applications", "{}"),
    ("heun_forward_s", "{:.3f}"),
    ("split_forward_s", "{:.3f}"),
    ("heun_gradient_s", "{:.3f}"),
    ("split_gradient_s", "{:.3f}"),
    ("split_gradient_over_forward", "{:.1f}×"),
    ("split_speedup_forward", "{:.1f}×"),
    ("split_speedup_gradient", "{:.1f}×"),
    ("heun_rel_l2_error", "{:.2e}"),
    ("split_rel_l2_error", "{:.2e}"),
    ("heun_gradient_rel_l2_error", "{:.2e}"),
    ("split_gradient_rel_l2_error", "{:.2e}"),
    ("numpy_euler_s", "{:.2f}"),
    ("numpy_euler_rel_l2_error", "{:.2%}"),
    ("speedup_vs_numpy_at_equal_accuracy_extrapolated", "{:.0f}×"),
    ("split_speedup_vs_numpy_at_equal_accuracy_extrapolated", "{:.0f}×"),
    ("split_speedup_vs_numpy_at_equal_accuracy_measured", "{:.0f}×"),
    ("split_speedup_vs_numpy_at_equal_accuracy_measured_lower_bound", "≥{:.0f}×"),
    ("stencil_ms", "{:.2f}"),
    ("stencil_GBps", "{:.1f}"),
    ("jax_copy_GBps", "{:.1f}"),
    ("numpy_copy_GBps", "{:.1f}"),
]
HEADERS = {
    "speedup_vs_numpy_at_equal_accuracy_extrapolated": "speedup_vs_numpy_at_equal_accuracy "
    "(extrapolated)",
}


def print_table(rows: list[dict]) -> None:
    """The rows as a markdown table, one column per measurement (– where not measured)."""
    print("| " + " | ".join(HEADERS.get(name, name) for name, _ in COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for row in rows:
        cells = [fmt.format(row[name]) if name in row else "–" for name, fmt in COLUMNS]
        print("| " + " | ".join(cells) + " |")
    for row in rows:
        matched = row.get("numpy_matched")
        runs = row.get("numpy_refinement_runs")
        if runs and not matched:
            longest = runs[-1]
            print(
                f"{row['grid']}: NumPy Euler's longest run ({longest['steps']} steps, "
                f"{longest['seconds']:.1f} s) still has error {longest['rel_l2_error']:.2e} > "
                f"SplitStep's {row['split_rel_l2_error']:.2e}: the speed-up is a lower bound"
            )
        if matched:
            print(
                f"{row['grid']}: NumPy Euler at {matched['steps']} steps has error "
                f"{matched['rel_l2_error']:.2e} ≤ SplitStep's {row['split_rel_l2_error']:.2e}, "
                f"in {matched['seconds']:.1f} s against SplitStep's {row['split_forward_s']:.3f} s"
            )


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="32³/4 mm and 64³/2 mm only")
    parser.add_argument(
        "--measure-numpy",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="refine and time NumPy Euler to SplitStep's accuracy (default: on unless --quick)",
    )
    parser.add_argument(
        "--numpy-budget-s",
        type=float,
        default=900.0,
        help="longest single NumPy refinement run, seconds (default 900)",
    )
    parser.add_argument("--grids", help="comma-separated spacings in mm, e.g. 4,2 (of 4, 2, 1)")
    parser.add_argument("--out", default=Path(__file__).parent / "results" / "forward.json")
    args = parser.parse_args(argv)
    sizes = {4.0: 32, 2.0: 64, 1.0: 128}
    if args.grids:
        spacings = [float(h) for h in args.grids.split(",")]
    else:
        spacings = [4.0, 2.0] if args.quick else [4.0, 2.0, 1.0]
    measure_numpy = (not args.quick) if args.measure_numpy is None else args.measure_numpy

    result = {
        "benchmark": "forward",
        "machine": {
            "cpu_count": os.cpu_count(),
            "jax_device_count": jax.device_count(),
            "platform": platform.platform(),
            "load_average_at_start": os.getloadavg(),
        },
        "jax": jax.__version__,
        "params": PARAMS,
        "split_step": {
            field: getattr(SplitStep(), field)
            for field in ("reaction_step", "diffusion_step", "min_steps", "max_stages", "safety")
        },
        "reference": {
            field: getattr(REFERENCE, field)
            for field in ("reaction_step", "diffusion_step", "min_steps", "max_stages", "safety")
        },
        "rows": [],
    }
    out = Path(args.out)
    for h in spacings:
        result["rows"].append(bench_grid(sizes[h], h, measure_numpy, args.numpy_budget_s))
        result["machine"]["load_average_at_end"] = os.getloadavg()
        with atomic_path(out) as tmp:
            tmp.write_text(json.dumps(result, indent=2))
    print_table(result["rows"])
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
