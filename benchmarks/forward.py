"""Forward-solver benchmark: JAX/diffrax Heun vs a plain-NumPy explicit-Euler version of the
same finite-volume scheme, run in the same process on MNI152 crops.

For each grid it reports the forward solve, its gradient (reverse mode, w.r.t. D_w, ρ, T and the
seed), a vmapped batch of 8, voxel-updates per second, XLA's temporary-memory estimate, and the
accuracy of both time integrators against a fine-step reference (the fair comparison: Euler at
its stability limit is fast but 5–15 % wrong). The speed-up "at equal accuracy" is extrapolated,
not measured: Euler's time at Heun's error, assuming first-order convergence (the column and
JSON key say so).

    python benchmarks/forward.py            # 64³/2 mm and 128³/1 mm (a few minutes)
    python benchmarks/forward.py --quick    # 32³/4 mm and 64³/2 mm (smoke run)

Writes benchmarks/results/forward.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from bayestumor.forward import FixedStep, GrowthParams, PDEForward
from bayestumor.imaging import load_mni152
from bayestumor.utils import atomic_path, median_seconds

SEED_MM = np.array([26.0, 18.0, 24.0])  # right frontal white matter in MNI152
PARAMS = dict(D_w=0.15, rho=0.015, T=600.0)  # realistic glioblastoma, ≈ 50 mm front travel


def numpy_euler(forward: PDEForward, params: GrowthParams, steps: int) -> np.ndarray:
    """Explicit Euler on the same faces, seed and reaction term, in plain NumPy (float32)."""
    faces = [np.asarray(face) for face in forward.faces]
    u = np.asarray(forward.initial_density(jnp.asarray(params.seed_mm)))
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


def bench_grid(n: int, spacing_mm: float, accuracy: bool) -> dict:
    anatomy = load_mni152(spacing_mm).cropped_cube(SEED_MM, n)
    params = GrowthParams(**PARAMS, seed_mm=SEED_MM)
    forward = PDEForward.from_anatomy(anatomy)
    steps = forward.stable_steps(params)
    forward = forward.sized_for(
        1.1 * PARAMS["D_w"] * PARAMS["T"], 1.1 * PARAMS["rho"] * PARAMS["T"]
    )
    weights = jnp.asarray(anatomy.wm > 0.5, jnp.float32)

    def solve(D_w, rho, T, seed):
        return forward(GrowthParams(D_w=D_w, rho=rho, T=T, seed_mm=seed))

    def loss(theta):
        return jnp.sum(solve(theta[0], theta[1], theta[2], theta[3:]) * weights)

    theta = jnp.asarray([PARAMS["D_w"], PARAMS["rho"], PARAMS["T"], *SEED_MM], jnp.float32)
    batch = GrowthParams(
        D_w=PARAMS["D_w"] * jnp.linspace(0.9, 1.1, 8),
        rho=PARAMS["rho"] * jnp.linspace(1.1, 0.9, 8),
        T=jnp.full(8, PARAMS["T"]),
        seed_mm=jnp.tile(jnp.asarray(SEED_MM, jnp.float32), (8, 1)),
    )
    forward_jit = jax.jit(lambda theta: solve(theta[0], theta[1], theta[2], theta[3:]))
    grad_jit = jax.jit(jax.grad(loss))
    batch_jit = jax.jit(jax.vmap(forward))

    t_forward = median_seconds(forward_jit, theta)
    t_grad = median_seconds(grad_jit, theta)
    t_batch = median_seconds(batch_jit, batch, repeats=1)
    start = time.perf_counter()
    euler = numpy_euler(forward, params, steps)
    t_numpy = time.perf_counter() - start
    row = {
        "grid": f"{n}³/{spacing_mm:g} mm",
        "steps": steps,
        "numpy_euler_s": t_numpy,
        "forward_s": t_forward,
        "speedup_vs_numpy": t_numpy / t_forward,
        "gradient_s": t_grad,
        "gradient_over_forward": t_grad / t_forward,
        "batch8_s": t_batch,
        "batch8_per_sample_over_forward": t_batch / 8 / t_forward,
        "voxel_updates_per_s": n**3 * steps / t_forward,
        "forward_temp_MiB": (temp_bytes(forward_jit, theta) or 0) / 2**20,
        "gradient_temp_MiB": (temp_bytes(jax.grad(loss), theta) or 0) / 2**20,
    }
    if accuracy:
        reference = forward.with_stepping(FixedStep(safety=0.05, reaction_step=0.005))
        reference = reference.sized_for(PARAMS["D_w"] * PARAMS["T"], PARAMS["rho"] * PARAMS["T"])
        u_ref = reference(params)
        row["heun_rel_l2_error"] = relative_l2(forward_jit(theta), u_ref)
        row["numpy_euler_rel_l2_error"] = relative_l2(euler, u_ref)
        # Euler is first order: reaching Heun's error needs error_ratio× more steps. Extrapolated
        # from the measured errors and time, not run (it would take minutes).
        error_ratio = row["numpy_euler_rel_l2_error"] / row["heun_rel_l2_error"]
        row["speedup_vs_numpy_at_equal_accuracy_extrapolated"] = t_numpy * error_ratio / t_forward
    return row


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="32³/4 mm and 64³/2 mm only")
    parser.add_argument("--out", default=Path(__file__).parent / "results" / "forward.json")
    args = parser.parse_args(argv)
    grids = [(32, 4.0), (64, 2.0)] if args.quick else [(64, 2.0), (128, 1.0)]
    rows = [bench_grid(n, h, accuracy=True) for n, h in grids]

    columns = [
        ("grid", "{}"),
        ("steps", "{}"),
        ("numpy_euler_s", "{:.3f}"),
        ("forward_s", "{:.3f}"),
        ("speedup_vs_numpy", "{:.1f}×"),
        ("speedup_vs_numpy_at_equal_accuracy_extrapolated", "{:.0f}×"),
        ("gradient_s", "{:.3f}"),
        ("gradient_over_forward", "{:.1f}×"),
        ("batch8_per_sample_over_forward", "{:.2f}×"),
        ("voxel_updates_per_s", "{:.3g}"),
        ("gradient_temp_MiB", "{:.0f}"),
        ("heun_rel_l2_error", "{:.2%}"),
        ("numpy_euler_rel_l2_error", "{:.2%}"),
    ]
    headers = {
        "speedup_vs_numpy_at_equal_accuracy_extrapolated": "speedup_vs_numpy_at_equal_accuracy "
        "(extrapolated)"
    }
    print("| " + " | ".join(headers.get(name, name) for name, _ in columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        cells = [fmt.format(row[name]) if name in row else "–" for name, fmt in columns]
        print("| " + " | ".join(cells) + " |")

    result = {
        "benchmark": "forward",
        "machine": {
            "cpu_count": os.cpu_count(),
            "jax_device_count": jax.device_count(),
            "platform": platform.platform(),
        },
        "jax": jax.__version__,
        "params": PARAMS,
        "rows": rows,
    }
    out = Path(args.out)
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
