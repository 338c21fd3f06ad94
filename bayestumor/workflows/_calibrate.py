"""The calibration pipeline: patient → region of interest → posterior (`sample_patient`), then
maps, files and summary (`bayestumor.workflows.write_report`); `calibrate_patient` does both.

Typical use::

    result = calibrate_patient("Patient-001", "out/Patient-001", CalibrationConfig(sampler="nuts"))
    result.summary["parameters"]["mu_D"]        # mean, sd, q05, q95, units
    result.datatree                               # ArviZ DataTree (also out/.../posterior.nc)

Everything is written into `out_dir` atomically: a temporary directory beside it is renamed
only when all files are complete, so a failure never leaves a partial output directory.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from bayestumor.config import CalibrationConfig
from bayestumor.errors import DiagnosticsWarning
from bayestumor.forward import AbstractForwardModel, CorrectedForward, discretisation_offset
from bayestumor.imaging import Patient, load_patient, with_lesion_tissue
from bayestumor.inference import (
    PARETO_K_GOOD,
    InferenceResult,
    LearningRate,
    Refinement,
    SamplerOptions,
    build_result,
    curvature_covariance,
    misfit_learning_rate,
    polished_map,
    refine_posterior,
    reweight,
    run_inference,
    sample,
)
from bayestumor.model import CalibrationProblem, Position, flatten_draws
from bayestumor.workflows._report import CalibrationResult, write_run
from bayestumor.workflows._setup import (
    CalibrationRun,
    DiscretisationCorrection,
    build_forward,
    build_problem,
    calibration_spacing_mm,
    fine_roi_anatomy,
    pde_forward,
    region_of_interest,
    validate_patient,
)


def check_against_pde(
    problem: CalibrationProblem, inference: InferenceResult, roi: Patient, config: CalibrationConfig
) -> Refinement:
    """Importance-reweight `config.pde_check_draws` evenly thinned surrogate posterior draws by
    the exact PDE likelihood on the same ROI (`bayestumor.inference.reweight`): PSIS k̂ < 0.7
    means the PDE-corrected means are trustworthy; larger k̂ means the surrogate posterior is
    off and the PDE sampler should be run. Warns (`DiagnosticsWarning`) when k̂ ≥ 0.7."""
    positions, _ = flatten_draws(inference.run.positions)
    n = len(next(iter(positions.values())))
    keep = np.unique(np.linspace(0, n - 1, min(config.pde_check_draws, n)).round().astype(int))
    thinned = {name: np.asarray(values)[keep] for name, values in positions.items()}
    pde_problem = dataclasses.replace(problem, forward=build_forward(roi, config, "pde"))
    refinement = reweight(problem, pde_problem, thinned, problem.parameter_names)
    if not refinement.reliable:
        warnings.warn(
            f"the surrogate posterior disagrees with the PDE (PSIS k̂ = "
            f"{refinement.pareto_k:.2f} ≥ {PARETO_K_GOOD}): use --forward pde for this patient",
            DiagnosticsWarning,
            stacklevel=2,
        )
    return refinement


def sample_patient(
    patient_or_dir: Patient | str | Path,
    config: CalibrationConfig | None = None,
    *,
    forward: AbstractForwardModel | None = None,
) -> CalibrationRun:
    """Load (if a directory) and validate the patient, decide the grid (`calibration_spacing_mm`;
    the run's ``config.spacing_mm`` holds it), crop it to the ROI, build the forward map
    (or use `forward`, which must live on the ROI grid) and sample the posterior. Writes
    nothing; `write_report` / `calibrate_patient` turn the result into files.

    When the posterior density reaches a face of the ROI (`density_at_roi_edge`) the margin is
    grown (`grown_margin_mm`) and the posterior sampled again, at most
    ``config.roi_growth_rounds`` times (not with a given `forward`, which is tied to its grid);
    the run's ``config.margin_mm`` is the margin finally used and ``roi_margins_mm`` every
    margin tried.

    Raises:
        InputError: unreadable or unusable input.
    """
    config = config or CalibrationConfig()
    patient = (
        patient_or_dir
        if isinstance(patient_or_dir, Patient)
        else load_patient(patient_or_dir, **config.load_options())
    )
    patient = with_lesion_tissue(patient, config.lesion_tissue)
    validate_patient(patient)
    config = config.replace(spacing_mm=calibration_spacing_mm(patient, config))
    resampled = patient.resampled(config.spacing_mm)
    margins = [config.margin_mm]
    rounds = 0 if forward is not None else config.roi_growth_rounds
    while True:
        roi = region_of_interest(patient, config)
        validate_patient(roi)
        problem, inference, learning_rate, correction = _sample_roi(patient, roi, config, forward)
        if len(margins) > rounds or not density_at_roi_edge(
            inference.densities, roi, resampled, config.threshold_u
        ):
            break
        margin = grown_margin_mm(config.margin_mm, inference, resampled)
        if margin <= config.margin_mm:  # the ROI already spans the brain
            break
        margins.append(margin)
        config = config.replace(margin_mm=margin)
    refinement = None
    if config.forward == "surrogate" and config.pde_check_draws > 0:
        refinement = check_against_pde(problem, inference, roi, config)
    return CalibrationRun(
        config=config,
        patient_name=patient.name,
        roi=roi,
        original_grid=patient.grid,
        original_volumes_ml=patient.observations.volumes_ml(),
        problem=problem,
        inference=inference,
        refinement=refinement,
        roi_margins_mm=tuple(float(m) for m in margins),
        learning_rate=learning_rate,
        discretisation=correction,
    )


def calibrated_problem(
    problem: CalibrationProblem, config: CalibrationConfig, position: Position | None = None
) -> tuple[CalibrationProblem, LearningRate]:
    """`problem` with the likelihood `config.likelihood` asks for: ``"exact"`` as it is,
    ``"calibrated"`` raised to the learning rate `misfit_learning_rate` estimates at the MAP
    (with bandwidth `config.misfit_length_mm`), found unless given as `position`."""
    voxels = int(problem.data.voxel_index.shape[0])
    if config.likelihood == "exact":
        return problem, LearningRate.exact(voxels)
    if position is None:
        position, _ = polished_map(problem)
    learning_rate = misfit_learning_rate(problem, position, config.misfit_length_mm)
    if config.progress:
        print(
            f"learning rate η = {learning_rate.value:.3g}: the {voxels} brain voxels count as "
            f"{learning_rate.effective_voxels:.0f} independent ones "
            f"(misfit correlation over ℓ = {config.misfit_length_mm:g} mm)"
        )
    return dataclasses.replace(problem, learning_rate=learning_rate.value), learning_rate


LARGE_DISCRETISATION_ERROR = 0.25
"""A discretisation offset larger than this (in density) warns: the grid is too coarse for an
offset measured at the mode to hold across the posterior (on the stress suite's 4 mm fits of
2 mm scans it was 0.03–0.07)."""


def corrected_problem(
    problem: CalibrationProblem,
    patient: Patient,
    roi: Patient,
    config: CalibrationConfig,
    position: Position,
) -> tuple[CalibrationProblem, DiscretisationCorrection | None]:
    """`problem` with its PDE corrected for the ROI grid's discretisation error, measured at
    `position` (the mode) against the PDE on a grid ``config.discretisation_correction`` times
    finer over the same box, on the patient's own anatomy at that resolution
    (`bayestumor.forward.discretisation_offset`; the module `bayestumor.forward._corrected`
    explains the approximation-error approach). Returns the problem unchanged and None when the
    patient's scans are coarser than that finer grid."""
    refinement = config.discretisation_correction
    started = time.perf_counter()
    anatomy = fine_roi_anatomy(patient, roi, refinement)
    if anatomy is None:
        if config.progress:
            print(
                f"discretisation correction skipped: the scans ({patient.grid.spacing_mm[0]:g} mm)"
                f" are coarser than the {refinement}× finer grid"
            )
        return problem, None
    named = problem.constrain(position)
    params = problem.growth_params(named)
    # The coarse map's own seed: its default width is widened to the coarse voxel, which the
    # fine grid would not do (the offset would then measure a different seed, not the grid).
    seed_sigma_mm = float(problem.forward.seed_convention["seed_sigma_mm"])
    fine = pde_forward(anatomy, config.replace(seed_sigma_mm=seed_sigma_mm))
    fine = fine.with_max_steps(fine.stable_steps(params) + 1)
    offset = np.asarray(discretisation_offset(problem.forward, fine, params), np.float32)
    correction = DiscretisationCorrection(
        refinement=refinement,
        fine_spacing_mm=float(anatomy.grid.spacing_mm[0]),
        offset=offset,
        at={name: np.asarray(value, np.float64).tolist() for name, value in named.items()},
        seconds=time.perf_counter() - started,
    )
    largest = float(np.abs(offset).max())
    if largest > LARGE_DISCRETISATION_ERROR:
        warnings.warn(
            f"the {roi.grid.spacing_mm[0]:g} mm grid misses the tumour's density by up to "
            f"{largest:.2f} against the {correction.fine_spacing_mm:g} mm grid: corrected at the "
            "mode, but too coarse for the correction to hold across the posterior; fit on a "
            "finer grid (--spacing)",
            DiagnosticsWarning,
            stacklevel=2,
        )
    if config.progress:
        print(
            f"discretisation correction from the {correction.fine_spacing_mm:g} mm grid: "
            f"|ε| ≤ {largest:.3f}, above 0.01 in "
            f"{np.count_nonzero(np.abs(offset) > 0.01)} voxels"
        )
    forward = CorrectedForward(problem.forward, jnp.asarray(offset))
    return dataclasses.replace(problem, forward=forward), correction


def _sample_roi(
    patient: Patient, roi: Patient, config: CalibrationConfig, forward: AbstractForwardModel | None
) -> tuple[CalibrationProblem, InferenceResult, LearningRate, DiscretisationCorrection | None]:
    """Build the problem on `roi` (with the likelihood `config` asks for, and the
    discretisation correction where `config` asks for one and the PDE is built here) and sample
    its posterior under `config`: directly, or coarse-to-fine (`CalibrationConfig.coarse_to_fine`,
    not with a given `forward`) from the same region of `patient` on the coarse grid."""
    problem = build_problem(roi, config, forward)
    options = SamplerOptions(
        chains=config.chains,
        warmup=config.warmup,
        draws=config.draws,
        map_start=config.map_start,
        max_tree_depth=config.max_tree_depth,
        smc_particles=config.smc_particles,
        smc_kernel=config.smc_kernel,
        smc_mcmc_steps=config.smc_mcmc_steps,
        progress=config.progress,
    )
    key = jax.random.key(config.seed)
    if config.coarse_to_fine and forward is None:
        return (*_sample_coarse_to_fine(patient, problem, config, options, key), None)
    # One MAP search serves η and, as the start of the samplers' own (tempered) search, NUTS.
    correct = config.discretisation_correction > 0 and forward is None and config.forward == "pde"
    start = polished_map(problem)[0] if config.likelihood == "calibrated" or correct else None
    correction = None
    if correct:
        problem, correction = corrected_problem(problem, patient, roi, config, start)
        if correction is not None:
            started = time.perf_counter()
            start = polished_map(problem, start)[0]
            correction = dataclasses.replace(
                correction, seconds=correction.seconds + time.perf_counter() - started
            )
    problem, learning_rate = calibrated_problem(problem, config, start)
    inference = run_inference(
        problem, config.sampler, key, dataclasses.replace(options, start=start)
    )
    return problem, inference, learning_rate, correction


def _sample_coarse_to_fine(
    patient: Patient,
    problem: CalibrationProblem,
    config: CalibrationConfig,
    options: SamplerOptions,
    key: jax.Array,
) -> tuple[CalibrationProblem, InferenceResult, LearningRate]:
    """The same region of `patient` on the coarse grid, then `sample_coarse_to_fine`."""
    coarse_config = config.replace(spacing_mm=config.coarse_spacing_mm)
    coarse_roi = region_of_interest(patient, coarse_config)
    validate_patient(coarse_roi)
    if config.progress:
        print(
            f"coarse-to-fine: sampling on the {config.coarse_spacing_mm:g} mm grid "
            f"{coarse_roi.grid.shape}, then carrying the draws to {config.spacing_mm:g} mm "
            f"{problem.forward.grid.shape}"
        )
    return sample_coarse_to_fine(
        problem, build_problem(coarse_roi, coarse_config), config, options, key
    )


COARSE_THIN = 2
"""Coarse-to-fine: the coarse MCMC chains run `COARSE_THIN` times the draws asked for, and
every `COARSE_THIN`-th is carried to the fine grid. Coarse draws are cheap and the chains' R-hat
needs length (at 500 draws per chain it came out at 1.008–1.013 on the 2 mm phantom of
`benchmarks/calibration.py`); the fine solves, one per carried draw, stay as many as asked."""


def sample_coarse_to_fine(
    problem: CalibrationProblem,
    coarse_problem: CalibrationProblem,
    config: CalibrationConfig,
    options: SamplerOptions,
    key: jax.Array,
) -> tuple[CalibrationProblem, InferenceResult, LearningRate]:
    """Coarse-to-fine inference: `coarse_problem` (the same data and priors on the coarse grid,
    exact likelihood) sampled with ``config.sampler``, its draws carried onto `problem`'s grid
    by `refine_posterior`.

    The coarse level is only a proposal, so its likelihood is tempered by the fine level's η
    (estimated at the fine mode of the untempered likelihood, searched from the coarse mode
    with the coarse curvature as preconditioner), not by an η of its own. The coarse grid's
    own η is smaller — its discretisation is one more misfit: 0.031 at 4 mm against 0.48 at
    2 mm on the 2 mm phantom of `benchmarks/calibration.py` — and so wide a posterior cost
    NUTS 16 gradients per draw against 8 at the fine η. After the Laplace transport the weight
    ESS was 23–74 % of the draws at the fine η (39–86 % at the coarse one); the moment-matching
    steps of `refine_posterior` raised it to 74–88 % (measured on the same phantom).

    Returns:
        The fine problem (with its η), the result and the fine learning rate; the result's
        ``diagnostics["multilevel"]`` says which path was taken, with the coarse grid and η.
    """
    calibrated = config.likelihood == "calibrated"
    started = time.perf_counter()
    coarse_start = fine_start = None
    if calibrated:
        coarse_start = polished_map(coarse_problem)[0]
        fine_start = polished_map(
            problem, coarse_start, curvature_covariance(coarse_problem, coarse_start)
        )[0]
    problem, learning_rate = calibrated_problem(problem, config, fine_start)
    coarse_problem = dataclasses.replace(coarse_problem, learning_rate=problem.learning_rate)
    learning_rate_done = time.perf_counter()
    key_coarse, key_fine, key_result = jax.random.split(key, 3)
    # SMC's particles are no chains: neither lengthened nor thinned.
    thin = 1 if config.sampler == "smc" else COARSE_THIN
    coarse_run = sample(
        coarse_problem,
        config.sampler,
        key_coarse,
        dataclasses.replace(options, start=coarse_start, draws=thin * options.draws),
    )
    coarse_done = time.perf_counter()
    run = refine_posterior(
        problem,
        coarse_problem,
        coarse_run,
        config.sampler,
        key_fine,
        dataclasses.replace(options, start=fine_start),
        refine_warmup=config.refine_warmup,
        thin=thin,
    )
    run.info["multilevel"].update(
        coarse_spacing_mm=float(config.coarse_spacing_mm),
        coarse_grid=list(coarse_problem.forward.grid.shape),
        coarse_learning_rate=problem.learning_rate,
        coarse_total_seconds=coarse_done - learning_rate_done,
        learning_rate_seconds=learning_rate_done - started,
    )
    if config.progress:
        multilevel = run.info["multilevel"]
        print(
            f"coarse-to-fine: PSIS k̂ = {multilevel['pareto_k']:.2f}, weight ESS "
            f"{multilevel['weight_ess']:.0f} of {multilevel['proposals']} → {multilevel['path']}"
        )
    refined = time.perf_counter()
    result = build_result(problem, run, key_result, progress=config.progress)
    result.diagnostics["multilevel"]["result_seconds"] = time.perf_counter() - refined
    return problem, result, learning_rate


def _roi_faces(roi: Patient, resampled: Patient) -> tuple[np.ndarray, np.ndarray]:
    """Which faces of the ROI (low and high, per axis) lie inside the resampled volume, i.e. can
    move outwards; the ROI is a whole-voxel crop of `resampled`."""
    start = np.round(resampled.grid.world_to_voxel(np.asarray(roi.grid.affine)[:3, 3]))
    start = start.astype(int)
    stop = start + np.array(roi.grid.shape)
    return start > 0, stop < np.array(resampled.grid.shape)


def density_at_roi_edge(
    densities: np.ndarray, roi: Patient, resampled: Patient, threshold_u: float
) -> bool:
    """Whether the posterior-mean density exceeds u*/2 on a face of the ROI that could move
    outwards (a face on the volume's edge cannot): the ROI then cuts the tumour's tail off, and
    its zero-flux boundary holds the simulated tumour back. u*/2 rather than the CTV's own
    contour, so that a CTV close to the face — which may touch it in a rerun — counts too.

    Args:
        densities: posterior draws of u on the ROI grid, (draws, x, y, z).
        roi: the patient on the ROI grid.
        resampled: the patient at the ROI's spacing, uncropped.
        threshold_u: u*.
    """
    above = densities.mean(axis=0, dtype=np.float32) > threshold_u / 2
    low_open, high_open = _roi_faces(roi, resampled)
    for axis in range(3):
        faces = np.moveaxis(above, axis, 0)
        if (low_open[axis] and faces[0].any()) or (high_open[axis] and faces[-1].any()):
            return True
    return False


def grown_margin_mm(margin_mm: float, inference: InferenceResult, resampled: Patient) -> float:
    """The next ROI margin: 1.5 × `margin_mm` plus the diffusion length 2·√(D_w·T) of the
    posterior mean (how far diffusion alone spreads cells over the tumour's age T), at least one
    voxel more, and at most what makes the ROI span the brain's bounding
    box and one voxel more (the lesion ∪ brain box of `resampled`), mm."""
    # μ_D = √(D_w·T) is recorded under either parametrisation.
    mu_d = np.asarray(inference.datatree["posterior"]["mu_D"], np.float64)
    diffusion_mm = 2.0 * float(np.mean(mu_d))
    spacing = float(max(resampled.grid.spacing_mm))
    lesion = np.argwhere(resampled.observations.lesion_mask)
    brain = np.argwhere(resampled.anatomy.brain_mask | resampled.observations.lesion_mask)
    # One voxel beyond the brain's box: the ROI's faces then hold no tumour.
    reach = 1 + np.maximum(
        lesion.min(axis=0) - brain.min(axis=0), brain.max(axis=0) - lesion.max(axis=0)
    )
    cap_mm = float(np.max(reach * np.asarray(resampled.grid.spacing_mm)))
    grown = max(1.5 * margin_mm + diffusion_mm, margin_mm + spacing)
    return float(min(grown, max(cap_mm, margin_mm)))


def calibrate_patient(
    patient_or_dir: Patient | str | Path,
    out_dir: str | Path,
    config: CalibrationConfig | None = None,
    *,
    forward: AbstractForwardModel | None = None,
) -> CalibrationResult:
    """Calibrate the growth model to one patient and write every product to `out_dir`:
    `sample_patient`, then `write_run` (atomically, into `out_dir`).

    Files: ``posterior.nc`` (ArviZ DataTree: posterior, sample_stats, log_likelihood,
    posterior_predictive, observed_data, constant_data), ``diagnostics.json``, ``config.json``,
    ``run.json`` and ``roi/`` (what `bayestumor report` needs to re-render without sampling),
    ``summary.json``, ``maps/*.nii.gz`` (density mean/sd/quantiles, infiltration probability,
    CTV, predicted images, in the patient's original space), ``pde_check.md`` (surrogate only)
    and ``figures/`` (when ``config.plots``).

    Raises:
        InputError: unreadable or unusable input (nothing is written then).
    """
    started = time.perf_counter()
    run = sample_patient(patient_or_dir, config, forward=forward)
    return write_run(run, out_dir, started=started)


__all__ = [
    "calibrate_patient",
    "calibrated_problem",
    "check_against_pde",
    "corrected_problem",
    "density_at_roi_edge",
    "grown_margin_mm",
    "sample_coarse_to_fine",
    "sample_patient",
]
