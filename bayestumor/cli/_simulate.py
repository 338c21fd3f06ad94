"""`bayestumor simulate`: grow a tumour on a patient's or the MNI152 anatomy, write NIfTI + PNG."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="simulate tumour growth on an anatomy and write the density as NIfTI + PNG",
        description=(
            "Solve the Fisher-Kolmogorov model from a seed and write the tumour-cell density in "
            "the anatomy's own space (same shape and affine)."
        ),
    )
    parser.add_argument("anatomy", help="a patient directory, or 'mni152' for the template")
    parser.add_argument(
        "--out", required=True, help="output NIfTI (.nii.gz); a PNG is written beside it"
    )
    parser.add_argument(
        "--D-w",
        dest="D_w",
        type=float,
        default=0.3,
        help="white-matter diffusivity, mm²/day (default 0.3)",
    )
    parser.add_argument(
        "--rho", type=float, default=0.02, help="proliferation rate, 1/day (default 0.02)"
    )
    parser.add_argument(
        "--T", dest="T", type=float, default=300.0, help="days since the seed (default 300)"
    )
    parser.add_argument(
        "--seed-mm",
        type=float,
        nargs=3,
        metavar=("X", "Y", "Z"),
        help="seed in world mm (default: the lesion centre of a patient, or a right frontal "
        "white-matter point on MNI152)",
    )
    parser.add_argument(
        "--spacing", type=float, default=None, help="solver voxel size in mm (default: the input's)"
    )
    parser.add_argument("--gm-ratio", type=float, default=10.0, help="D_w / D_grey (default 10)")
    add_seed_options(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def add_seed_options(parser: argparse.ArgumentParser, defaults=None) -> None:
    """The initial condition's options (``simulate``; ``calibrate`` passes its config defaults)."""
    shape = getattr(defaults, "seed_shape", "gaussian")
    sigma = getattr(defaults, "seed_sigma_mm", None)
    amplitude = getattr(defaults, "seed_amplitude", 1.0)
    parser.add_argument(
        "--seed-shape",
        choices=("gaussian", "heat-kernel"),
        default=shape,
        help="initial condition: gaussian (amplitude * exp(-r^2 / 2 sigma^2)) or heat-kernel "
        "(the same, set to 0 where it is <= 0.1, as TumorGrowthToolkit seeds; its seed is "
        f"--seed-sigma-mm 3.162 --seed-amplitude 0.502) (default: {shape})",
    )
    parser.add_argument(
        "--seed-sigma-mm",
        type=float,
        default=sigma,
        help="width sigma of the seed, mm (default: 4 mm, widened to the solver's voxel size)",
    )
    parser.add_argument(
        "--seed-amplitude",
        type=float,
        default=amplitude,
        help=f"peak density of the seed, in (0, 1] (default: {amplitude:g})",
    )


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from bayestumor.config import CalibrationConfig
    from bayestumor.errors import InputError
    from bayestumor.forward import GrowthParams
    from bayestumor.imaging import load_mni152, load_patient
    from bayestumor.workflows import MNI152_DEFAULT_SEED_MM, simulate, write_simulation

    for name in ("D_w", "T"):
        if not getattr(args, name) > 0:
            raise InputError(f"--{name.replace('_', '-')} must be positive")
    if args.rho < 0:
        raise InputError("--rho must be non-negative")
    seed_options = {
        "seed_shape": args.seed_shape,
        "seed_sigma_mm": args.seed_sigma_mm,
        "seed_amplitude": args.seed_amplitude,
    }
    CalibrationConfig(**seed_options)  # the same checks as a calibration's (InputError)
    if args.anatomy.lower() == "mni152":
        anatomy = load_mni152()
        seed = args.seed_mm or MNI152_DEFAULT_SEED_MM
    else:
        patient = load_patient(args.anatomy)
        anatomy = patient.anatomy
        seed = args.seed_mm if args.seed_mm is not None else patient.lesion_center_mm()
    params = GrowthParams(D_w=args.D_w, rho=args.rho, T=args.T, seed_mm=np.asarray(seed, float))
    result = simulate(
        anatomy,
        params,
        spacing_mm=args.spacing,
        progress=not args.quiet,
        gm_ratio=args.gm_ratio,
        **seed_options,
    )
    png = write_simulation(result, anatomy, params, args.out)
    volume = float((result.density >= 0.25).sum()) * anatomy.grid.voxel_volume_ml
    print(
        f"simulated {args.T:g} days on a {result.roi_grid.shape} grid "
        f"({result.steps} steps, {result.seconds:.1f} s); volume with u ≥ 0.25: {volume:.1f} ml\n"
        f"wrote {args.out} and {png}"
    )
    return 0
