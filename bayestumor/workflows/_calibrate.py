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
import numpy as np

from bayestumor.config import CalibrationConfig
from bayestumor.errors import DiagnosticsWarning
from bayestumor.forward import AbstractForwardModel
from bayestumor.imaging import Patient, load_patient, with_lesion_tissue
from bayestumor.inference import (
    PARETO_K_GOOD,
    InferenceResult,
    Refinement,
    SamplerOptions,
    reweight,
    run_inference,
)
from bayestumor.model import CalibrationProblem, flatten_draws
from bayestumor.workflows._report import CalibrationResult, write_run
from bayestumor.workflows._setup import (
    CalibrationRun,
    build_forward,
    build_problem,
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
    """Load (if a directory) and validate the patient, crop it to the ROI, build the forward map
    (or use `forward`, which must live on the ROI grid) and sample the posterior. Writes
    nothing; `write_report` / `calibrate_patient` turn the result into files.

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
    roi = region_of_interest(patient, config)
    validate_patient(roi)
    problem = build_problem(roi, config, forward)
    inference = run_inference(
        problem,
        config.sampler,
        jax.random.key(config.seed),
        SamplerOptions(
            chains=config.chains,
            warmup=config.warmup,
            draws=config.draws,
            map_start=config.map_start,
            max_tree_depth=config.max_tree_depth,
            smc_particles=config.smc_particles,
            smc_kernel=config.smc_kernel,
            smc_mcmc_steps=config.smc_mcmc_steps,
            progress=config.progress,
        ),
    )
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
    )


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


__all__ = ["calibrate_patient", "check_against_pde", "sample_patient"]
