"""``bayestumor calibrate``: sample the posterior of one patient and write the run and its report.

The sampling options are shared with ``bayestumor demo`` (`add_sampling_options`, `config_from`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bayestumor.cli._simulate import add_seed_options
from bayestumor.config import (
    DEFAULT_SPACING_MM,
    GM_RATIO_RANGE,
    LIKELIHOODS,
    MODEL_ERRORS,
    PDE_STEPPINGS,
    PET_BIAS_SD,
    PET_NORMALISATIONS,
    SEED_AMPLITUDE_RANGE,
    SEED_SIGMA_RANGE_MM,
    TUMOUR_LABEL_CONVENTIONS,
    VISIBILITIES,
    CalibrationConfig,
)
from bayestumor.errors import InputError


def add_sampling_options(parser: argparse.ArgumentParser, defaults) -> None:
    parser.add_argument("--out", type=Path, required=True, help="output directory (atomic)")
    parser.add_argument("--forward", choices=("pde", "surrogate"), default=defaults.forward)
    parser.add_argument(
        "--sampler", choices=("nuts", "blackjax-nuts", "smc"), default=defaults.sampler
    )
    parser.add_argument(
        "--spacing",
        type=float,
        default=defaults.spacing_mm,
        help="ROI voxel size, mm (default: "
        + (
            f"{defaults.spacing_mm:g})"
            if defaults.spacing_mm is not None
            else f"{DEFAULT_SPACING_MM:g}, coarse-to-fine, or the scans' spacing where coarser; "
            "the network's own grid with --forward surrogate)"
        ),
    )
    parser.add_argument(
        "--margin", type=float, default=defaults.margin_mm, help="ROI margin around the lesion, mm"
    )
    parser.add_argument(
        "--coarse-spacing",
        type=float,
        default=defaults.coarse_spacing_mm,
        metavar="MM",
        help="coarse-to-fine when --spacing is finer than this: sample the same region on this "
        "grid and carry the draws to --spacing by importance weights (PSIS k-hat < 0.7) or short "
        "fine chains; 0 samples the fine grid directly",
    )
    parser.add_argument(
        "--refine-warmup",
        type=int,
        default=defaults.refine_warmup,
        help="warm-up iterations of the fine chains of coarse-to-fine, when they are needed",
    )
    parser.add_argument(
        "--stepping",
        choices=PDE_STEPPINGS,
        default=defaults.stepping,
        help="the PDE's time stepping: split (Strang splitting with the exact logistic step "
        "and RKC diffusion; ~4x faster NUTS at 4 mm) or heun steps",
    )
    parser.add_argument("--chains", type=int, default=defaults.chains)
    parser.add_argument("--draws", type=int, default=defaults.draws, help="draws per chain")
    parser.add_argument("--warmup", type=int, default=defaults.warmup)
    parser.add_argument("--particles", type=int, default=defaults.smc_particles, help="SMC")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--scale-free",
        action="store_true",
        default=defaults.priors.parametrisation == "scale_free",
        help="sample mu_D = sqrt(D_w T), mu_rho = sqrt(rho T) instead of D_w, rho, T",
    )
    parser.add_argument(
        "--pde-check",
        type=int,
        default=defaults.pde_check_draws,
        metavar="N",
        help="with --forward surrogate: reweight N posterior draws by the exact PDE and report "
        "PSIS k-hat and the corrected means (0: skip)",
    )
    parser.add_argument(
        "--likelihood",
        choices=LIKELIHOODS,
        default=defaults.likelihood,
        help="calibrated: the per-voxel likelihood raised to a learning rate set from the "
        "spatial correlation of the misfit (honest when the scans are not draws from the "
        "model); exact: every voxel independent",
    )
    parser.add_argument(
        "--misfit-length",
        type=float,
        default=defaults.misfit_length_mm,
        metavar="MM",
        help="bandwidth of the misfit's spatial correlation for --likelihood calibrated, mm",
    )
    parser.add_argument(
        "--model-error",
        choices=MODEL_ERRORS,
        default=defaults.model_error,
        help="stress-suite: the reported mu_D_ref, mu_rho_ref (seed size free) carry the "
        "model-form error measured on the stress suite; none: the model's posterior alone",
    )
    parser.add_argument(
        "--discretisation-correction",
        type=int,
        default=defaults.discretisation_correction,
        metavar="R",
        help="correct the PDE for the grid's discretisation error, measured at the mode "
        "against a grid R times finer on the patient's own anatomy (R >= 2; 0: none)",
    )
    parser.add_argument(
        "--seed-width-free",
        action="store_true",
        default=defaults.priors.seed_width_free,
        help="sample the seed's width as a nuisance parameter (log-uniform on "
        f"{SEED_SIGMA_RANGE_MM[0]:g}-{SEED_SIGMA_RANGE_MM[1]:g} mm): T then counts from a seed "
        "of unknown size (PDE only)",
    )
    parser.add_argument(
        "--seed-amplitude-free",
        action="store_true",
        default=defaults.priors.seed_amplitude_free,
        help="sample the seed's peak density as a nuisance parameter (log-uniform on "
        f"{SEED_AMPLITUDE_RANGE[0]:g}-{SEED_AMPLITUDE_RANGE[1]:g}): other tools seed at other "
        "peaks (PDE only)",
    )
    parser.add_argument(
        "--gm-ratio-free",
        action="store_true",
        default=defaults.priors.gm_ratio_free,
        help="sample the grey/white diffusivity ratio D_w/D_g as a nuisance parameter "
        f"(log-uniform on {GM_RATIO_RANGE[0]:g}-{GM_RATIO_RANGE[1]:g}; fixed at 10 otherwise): "
        "tools disagree on it (PDE only)",
    )
    parser.add_argument(
        "--pet-bias",
        type=float,
        default=defaults.priors.pet_bias,
        metavar="SD",
        help="a smooth multiplicative PET gain field (a quadratic in position) with coefficients "
        f"of prior sd SD, e.g. {PET_BIAS_SD:g}: uptake proportional to density only up to a slow "
        "spatial gain (default: none)",
    )
    parser.add_argument(
        "--visibility",
        choices=VISIBILITIES,
        default=defaults.priors.visibility,
        help="how a segmentation sees density: 'density', a band of density of width "
        "sigma_alpha around u_c (Lipkova et al. 2019), or 'boundary', the contour u = u_c "
        "displaced by a position error of sd boundary_sd mm (robust to sharp masks)",
    )
    parser.add_argument("--threshold-u", type=float, default=defaults.threshold_u)
    parser.add_argument("--ctv-probability", type=float, default=defaults.ctv_probability)
    parser.add_argument("--no-plots", action="store_true")
    add_seed_options(parser, defaults)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def config_from(args: argparse.Namespace, base):
    """`base` (a `CalibrationConfig`) with the sampling options given on the command line."""
    priors = base.priors.replace(
        parametrisation="scale_free" if args.scale_free else base.priors.parametrisation
    )
    if args.seed_width_free and not priors.seed_width_free:
        priors = priors.replace(seed_sigma=SEED_SIGMA_RANGE_MM)
    if args.seed_amplitude_free and not priors.seed_amplitude_free:
        priors = priors.replace(seed_amplitude=SEED_AMPLITUDE_RANGE)
    if args.gm_ratio_free and not priors.gm_ratio_free:
        priors = priors.replace(gm_ratio=GM_RATIO_RANGE)
    if args.pet_bias != priors.pet_bias:
        priors = priors.replace(pet_bias=args.pet_bias)
    priors = priors.replace(visibility=args.visibility)
    return base.replace(
        forward=args.forward,
        sampler=args.sampler,
        spacing_mm=args.spacing,
        margin_mm=args.margin,
        stepping=args.stepping,
        coarse_spacing_mm=args.coarse_spacing or None,
        refine_warmup=args.refine_warmup,
        chains=args.chains,
        draws=args.draws,
        warmup=args.warmup,
        smc_particles=args.particles,
        pde_check_draws=args.pde_check,
        seed=args.seed,
        priors=priors,
        threshold_u=args.threshold_u,
        ctv_probability=args.ctv_probability,
        likelihood=args.likelihood,
        misfit_length_mm=args.misfit_length,
        model_error=args.model_error,
        discretisation_correction=args.discretisation_correction,
        seed_shape=args.seed_shape,
        seed_sigma_mm=args.seed_sigma_mm,
        seed_amplitude=args.seed_amplitude,
        plots=not args.no_plots,
        progress=not args.quiet,
    )


_OPTION_FIELDS = {
    "forward": "forward",
    "sampler": "sampler",
    "spacing": "spacing_mm",
    "margin": "margin_mm",
    "stepping": "stepping",
    "coarse_spacing": "coarse_spacing_mm",
    "refine_warmup": "refine_warmup",
    "chains": "chains",
    "draws": "draws",
    "warmup": "warmup",
    "particles": "smc_particles",
    "pde_check": "pde_check_draws",
    "seed": "seed",
    "threshold_u": "threshold_u",
    "ctv_probability": "ctv_probability",
    "likelihood": "likelihood",
    "misfit_length": "misfit_length_mm",
    "model_error": "model_error",
    "discretisation_correction": "discretisation_correction",
    "seed_shape": "seed_shape",
    "seed_sigma_mm": "seed_sigma_mm",
    "seed_amplitude": "seed_amplitude",
}


def build_defaults() -> argparse.Namespace:
    """The ``calibrate`` options' defaults, to tell which ones the user gave explicitly."""
    parser = argparse.ArgumentParser()
    add_sampling_options(parser, CalibrationConfig())
    return parser.parse_args(["--out", "-"])


def _from_config(config, option: str, default):
    if option == "scale_free":
        return config.priors.parametrisation == "scale_free"
    if option == "seed_width_free":
        return config.priors.seed_width_free
    if option == "seed_amplitude_free":
        return config.priors.seed_amplitude_free
    if option == "gm_ratio_free":
        return config.priors.gm_ratio_free
    if option == "pet_bias":
        return config.priors.pet_bias
    if option == "visibility":
        return config.priors.visibility
    if option == "no_plots":
        return not config.plots
    if option in _OPTION_FIELDS:
        return getattr(config, _OPTION_FIELDS[option])
    return default


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``calibrate``."""
    calibrate = subparsers.add_parser(
        "calibrate",
        help="calibrate the growth model to one patient directory",
        description=(
            "Sample the posterior of the Fisher-Kolmogorov growth and imaging parameters given "
            "PATIENT_DIR (wm, gm[, csf], t1c, flair or a tumour label map[, pet, brain_mask] "
            "NIfTI) and write posterior.nc, "
            "summary.json, diagnostics.json, maps/*.nii.gz (original space) and figures/. "
            "Exit code 3: the sampler's diagnostics failed."
        ),
    )
    calibrate.add_argument("patient_dir", type=Path, metavar="PATIENT_DIR")
    calibrate.add_argument(
        "--config",
        type=Path,
        help="JSON file of CalibrationConfig options (e.g. a previous run's config.json, with "
        "priors); command-line options given explicitly override it",
    )
    add_input_options(calibrate)
    add_sampling_options(calibrate, CalibrationConfig())
    calibrate.set_defaults(func=run)


def add_input_options(parser: argparse.ArgumentParser) -> None:
    """How the patient directory is read (``calibrate`` only: the demo simulates its patient).

    Defaults are None, meaning "not given": then the ``--config`` file's value, else the
    `CalibrationConfig` default, applies (`input_options_from`).
    """
    defaults = CalibrationConfig()
    parser.add_argument(
        "--labels",
        choices=TUMOUR_LABEL_CONVENTIONS,
        default=None,
        help="tumour label map convention: brats2021 (1 necrotic, 2 oedema, 4 enhancing), "
        "brats2023 (1, 2 oedema, 3 enhancing), gliodil (1, 3 oedema, 4 enhancing); auto detects "
        f"it only when unambiguous (default: {defaults.labels})",
    )
    parser.add_argument(
        "--pet-normalise",
        choices=PET_NORMALISATIONS,
        default=None,
        help="PET normalisation to [0, 1]: none (already normalised), max (maximum in brain "
        "and lesion), percentile (99th percentile in the lesion), tbr (tumour-to-background "
        "ratio against the brain 10 mm beyond the lesion, (TBR-1)/(TBR_peak-1) clipped) "
        f"(default: {defaults.pet_normalise})",
    )
    parser.add_argument(
        "--lesion-tissue",
        choices=("as-given", "white-matter", "brain"),
        default=None,
        help="tissue of the lesion's (T1c or FLAIR) voxels: as-given (the maps as read), "
        "white-matter (wm 1, gm 0, csf 0: white-matter diffusivity where the tumour is), brain "
        "(wm + gm = 1 in their given ratio, csf 0; white matter where neither is given) "
        f"(default: {defaults.lesion_tissue})",
    )


def input_options_from(args: argparse.Namespace, base):
    """`base` (a `CalibrationConfig`) with the input options given on the command line."""
    changes = {
        field: value
        for field, value in (
            ("labels", args.labels),
            ("pet_normalise", args.pet_normalise),
            ("lesion_tissue", args.lesion_tissue),
        )
        if value is not None
    }
    return base.replace(**changes)


def run(args: argparse.Namespace) -> int:
    """Run ``bayestumor calibrate``; returns the exit code."""
    from bayestumor.workflows import calibrate_patient

    base = CalibrationConfig()
    if args.config is not None:
        try:
            base = CalibrationConfig.from_dict(json.loads(args.config.read_text()))
        except (OSError, ValueError, TypeError) as error:
            raise InputError(f"cannot read the configuration: {error}", args.config) from error
        # Options not given on the command line keep the file's values.
        defaults = build_defaults()
        for name, value in vars(defaults).items():
            if getattr(args, name, None) == value:
                setattr(args, name, _from_config(base, name, value))
    config = config_from(args, input_options_from(args, base))
    result = calibrate_patient(args.patient_dir, args.out, config)
    print(f"wrote {result.out_dir}")
    return 0 if result.summary["diagnostics"]["passed"] else 3
