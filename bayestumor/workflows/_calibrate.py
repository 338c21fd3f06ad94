"""The calibration pipeline: patient → region of interest → posterior → maps, files and summary.

Typical use::

    result = calibrate_patient("Patient-001", "out/Patient-001", CalibrationConfig(sampler="nuts"))
    result.summary["parameters"]["mu_D"]        # mean, sd, q05, q95, units
    result.datatree                               # ArviZ DataTree (also out/.../posterior.nc)

Everything is written into `out_dir` atomically: a temporary directory beside it is renamed
only when all files are complete, so a failure never leaves a partial output directory.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import jax
import numpy as np
import xarray as xr

from bayestumor.errors import DiagnosticsWarning, InputError
from bayestumor.forward import AbstractForwardModel, FixedStep, PDEForward
from bayestumor.imaging import Patient, load_patient
from bayestumor.inference import (
    PARETO_K_GOOD,
    SAMPLERS,
    InferenceResult,
    Refinement,
    format_diagnostics,
    format_refinement,
    parameter_names,
    reweight,
    run_inference,
)
from bayestumor.model import (
    DEFAULT_EPSILON,
    UNITS,
    CalibrationProblem,
    Priors,
    flatten_draws,
    model_data_from_patient,
)
from bayestumor.posterior import (
    DEFAULT_CTV_PROBABILITY,
    DEFAULT_THRESHOLD_U,
    PosteriorMaps,
    posterior_maps,
    write_posterior_maps,
)
from bayestumor.utils import atomic_directory

FORWARD_KINDS = ("pde", "surrogate")


@dataclass(frozen=True)
class CalibrationConfig:
    """Options of `calibrate_patient` (JSON round trip with `to_dict` / `from_dict`).

    Attributes:
        forward: forward map kind, ``"pde"`` (Fisher–Kolmogorov finite volumes) or
            ``"surrogate"`` (needs `bayestumor.forward.surrogate.SurrogateForward`).
        sampler: ``"nuts"`` (NumPyro), ``"blackjax-nuts"`` or ``"smc"`` (BlackJAX tempered SMC).
        spacing_mm: isotropic voxel size of the region of interest, mm.
        margin_mm: margin around the FLAIR ∪ T1c bounding box that forms the ROI, mm.
        chains, warmup, draws: NUTS chains, warm-up iterations and draws per chain.
        seed: PRNG seed.
        priors: prior ranges and parametrisation (`Priors`).
        smc_particles, smc_kernel, smc_mcmc_steps: SMC particles, inner kernel
            (``"rmh"``/``"hmc"``) and inner steps per stage.
        max_tree_depth: NUTS tree depth bound.
        map_start: start NUTS at the MAP with a Laplace mass matrix.
        threshold_u: density threshold u* of the infiltration probability and CTV.
        ctv_probability: p of the CTV {P(u > u*) ≥ p}.
        epsilon: clipping of the MRI visibility probability.
        reaction_step: PDE accuracy bound on ρ·Δt per Heun step (`FixedStep.reaction_step`).
        pde_check_draws: with ``forward="surrogate"``, how many posterior draws (evenly
            thinned) to importance-reweight by the exact PDE likelihood, reporting PSIS k̂,
            weight ESS and the PDE-corrected means (`check_against_pde`); 0 skips the check.
        progress: progress bars and printed diagnostics.
        plots: write PNG figures.
    """

    forward: Literal["pde", "surrogate"] = "pde"
    sampler: Literal["nuts", "blackjax-nuts", "smc"] = "nuts"
    spacing_mm: float = 4.0
    margin_mm: float = 20.0
    chains: int = 2
    warmup: int = 300
    draws: int = 300
    seed: int = 0
    priors: Priors = field(default_factory=Priors)
    smc_particles: int = 256
    smc_kernel: Literal["rmh", "hmc"] = "rmh"
    smc_mcmc_steps: int = 10
    max_tree_depth: int = 6
    map_start: bool = True
    threshold_u: float = DEFAULT_THRESHOLD_U
    ctv_probability: float = DEFAULT_CTV_PROBABILITY
    epsilon: float = DEFAULT_EPSILON
    reaction_step: float = 0.05
    pde_check_draws: int = 200
    progress: bool = True
    plots: bool = True

    def __post_init__(self):
        if self.forward not in FORWARD_KINDS:
            raise InputError(f"unknown forward model {self.forward!r}; choose from {FORWARD_KINDS}")
        if self.sampler not in SAMPLERS:
            raise InputError(f"unknown sampler {self.sampler!r}; choose from {SAMPLERS}")
        positive = ("spacing_mm", "chains", "warmup", "draws", "smc_particles", "reaction_step")
        for name in positive:
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise InputError(f"{name} must be positive, got {value}")
        for name in ("margin_mm", "pde_check_draws"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise InputError(f"{name} must be ≥ 0, got {value}")
        if isinstance(self.priors, dict):
            object.__setattr__(self, "priors", Priors.from_dict(self.priors))

    def replace(self, **changes: Any) -> CalibrationConfig:
        """A copy with some options changed."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (priors nested)."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        values["priors"] = self.priors.to_dict()
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> CalibrationConfig:
        """Inverse of `to_dict`; unknown keys raise `InputError`."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - names
        if unknown:
            raise InputError(f"unknown calibration options: {sorted(unknown)}")
        values = dict(values)
        if "priors" in values and isinstance(values["priors"], dict):
            values["priors"] = Priors.from_dict(values["priors"])
        return cls(**values)


@dataclass(frozen=True, eq=False)
class CalibrationResult:
    """Outcome of `calibrate_patient`.

    Attributes:
        datatree: ArviZ DataTree (saved as ``posterior.nc``).
        summary: JSON-ready dict (saved as ``summary.json``): per-parameter mean, sd, q05, q95
            and units; diagnostics (``passed``, ``failures``, ...); ``ctv_ml``, ``flair_ml``,
            ``t1c_ml``; ``runtime_s``; sampler and patient name.
        maps: posterior maps on the ROI grid.
        roi: the patient on the ROI grid the model was fitted on.
        out_dir: the output directory.
    """

    datatree: xr.DataTree
    summary: dict[str, Any]
    maps: PosteriorMaps
    roi: Patient
    out_dir: Path


def validate_patient(patient: Patient) -> None:
    """Reject observations the model cannot use, with an `InputError` naming the problem.

    Checks: at least one segmentation with a tumour voxel inside the brain; PET (if given)
    finite and within [0, 1].
    """
    observations = patient.observations
    source = patient.source
    segmentations = [m for m in (observations.t1c, observations.flair) if m is not None]
    if not segmentations:
        raise InputError("no T1c or FLAIR segmentation: nothing to calibrate to", source)
    if not any(mask.any() for mask in segmentations):
        raise InputError("the T1c and FLAIR segmentations are empty (no tumour voxel)", source)
    if not any((mask & patient.anatomy.brain_mask).any() for mask in segmentations):
        raise InputError("no tumour voxel lies inside the brain (white + grey matter)", source)
    pet = observations.pet
    if pet is not None:
        if not np.all(np.isfinite(pet)):
            raise InputError("PET contains NaN or infinite values", source)
        if pet.min() < 0.0 or pet.max() > 1.0:
            raise InputError(
                f"PET must be normalised to [0, 1], found [{pet.min():g}, {pet.max():g}]", source
            )


def region_of_interest(patient: Patient, config: CalibrationConfig) -> Patient:
    """The patient resampled to `config.spacing_mm` and cropped to the lesion ± margin."""
    return patient.resampled(config.spacing_mm).cropped(config.margin_mm)


def build_forward(
    roi: Patient, config: CalibrationConfig, kind: Literal["pde", "surrogate"] | None = None
) -> AbstractForwardModel:
    """The forward map on the ROI (of `kind`, default `config.forward`); the PDE's step bound
    sized for the prior's upper ends."""
    if (kind or config.forward) == "surrogate":
        from bayestumor.forward.surrogate import SurrogateForward

        surrogate = SurrogateForward.from_anatomy(roi.anatomy)
        # Warns where the prior leaves the network's training ranges.
        surrogate.check_ranges(*config.priors.scale_free_ranges())
        return surrogate
    forward = PDEForward.from_anatomy(
        roi.anatomy, stepping=FixedStep(reaction_step=config.reaction_step)
    )
    return forward.sized_for(*config.priors.max_diffusion_and_reaction())


def check_against_pde(
    problem: CalibrationProblem, inference: InferenceResult, roi: Patient, config: CalibrationConfig
) -> Refinement:
    """Importance-reweight `config.pde_check_draws` evenly thinned surrogate posterior draws by
    the exact PDE likelihood on the same ROI (`reweight`): PSIS k̂ < 0.7 means the
    PDE-corrected means are trustworthy; larger k̂ means the surrogate posterior is off and the
    PDE sampler should be run. Warns (`DiagnosticsWarning`) when k̂ ≥ 0.7."""
    positions, _ = flatten_draws(inference.run.positions)
    n = len(next(iter(positions.values())))
    keep = np.unique(np.linspace(0, n - 1, min(config.pde_check_draws, n)).round().astype(int))
    thinned = {name: np.asarray(values)[keep] for name, values in positions.items()}
    pde_problem = dataclasses.replace(problem, forward=build_forward(roi, config, "pde"))
    refinement = reweight(problem, pde_problem, thinned, parameter_names(problem))
    if not refinement.reliable:
        warnings.warn(
            f"the surrogate posterior disagrees with the PDE (PSIS k̂ = "
            f"{refinement.pareto_k:.2f} ≥ {PARETO_K_GOOD}): use --forward pde for this patient",
            DiagnosticsWarning,
            stacklevel=2,
        )
    return refinement


def refinement_summary(refinement: Refinement) -> dict[str, Any]:
    """JSON-ready form of a `Refinement` for ``summary.json``."""
    keys = ("surrogate_mean", "surrogate_sd", "pde_mean", "pde_sd", "shift_in_sd")
    return {
        "draws": len(refinement.log_weights),
        "pareto_k": refinement.pareto_k,
        "reliable": refinement.reliable,
        "weight_ess": refinement.ess,
        "parameters": {
            name: dict(zip(keys, values, strict=True))
            for name, values in refinement.summary.items()
        },
    }


def summarise(
    inference: InferenceResult, roi: Patient, names: list[str]
) -> dict[str, dict[str, float | str]]:
    """Per-parameter posterior mean, sd, 5 % and 95 % quantiles, with units."""
    posterior = inference.datatree["posterior"]
    table = {}
    for name in names:
        values = np.asarray(posterior[name], np.float64).reshape(-1)
        q05, q95 = np.quantile(values, [0.05, 0.95])
        table[name] = {
            "mean": float(values.mean()),
            "sd": float(values.std()),
            "q05": float(q05),
            "q95": float(q95),
            "units": UNITS[name],
        }
    return table


def calibrate_patient(
    patient_or_dir: Patient | str | Path,
    out_dir: str | Path,
    config: CalibrationConfig | None = None,
    *,
    forward: AbstractForwardModel | None = None,
) -> CalibrationResult:
    """Calibrate the growth model to one patient and write every product to `out_dir`.

    Steps: load (if a directory) and validate the patient; resample and crop to the ROI; build
    the forward map (or use `forward`, which must live on the ROI grid); sample the posterior;
    compute posterior maps; write, atomically, into `out_dir`:

    - ``posterior.nc`` — ArviZ DataTree (posterior, sample_stats, log_likelihood,
      posterior_predictive, observed_data, constant_data);
    - ``summary.json``, ``diagnostics.json``, ``config.json``;
    - ``maps/*.nii.gz`` — density mean/sd/quantiles, infiltration probability, CTV, predicted
      T1c/FLAIR probability, in the patient's original space;
    - ``figures/slices.png``, ``figures/trace.png`` (when ``config.plots``).

    Raises:
        InputError: unreadable or unusable input (nothing is written then).
    """
    config = config or CalibrationConfig()
    started = time.perf_counter()
    patient = (
        patient_or_dir if isinstance(patient_or_dir, Patient) else load_patient(patient_or_dir)
    )
    validate_patient(patient)
    roi = region_of_interest(patient, config)
    validate_patient(roi)
    if forward is None:
        forward = build_forward(roi, config)
    elif not forward.grid.same_as(roi.grid):
        raise InputError("the given forward model's grid is not the region of interest's grid")
    problem = CalibrationProblem(
        forward=forward,
        data=model_data_from_patient(roi),
        priors=config.priors,
        epsilon=config.epsilon,
    )
    inference = run_inference(
        problem,
        config.sampler,
        jax.random.key(config.seed),
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
    names = parameter_names(problem)
    refinement = None
    if config.forward == "surrogate" and config.pde_check_draws > 0:
        refinement = check_against_pde(problem, inference, roi, config)
    posterior = inference.datatree["posterior"]
    imaging = {
        name: np.asarray(posterior[name]).reshape(-1)
        for name in ("u_c_t1c", "u_c_flair", "sigma_alpha")
        if name in posterior
    }
    maps = posterior_maps(
        inference.densities,
        roi.grid,
        imaging,
        threshold_u=config.threshold_u,
        ctv_probability=config.ctv_probability,
        epsilon=config.epsilon,
    )
    if maps.ctv_at_roi_edge:
        warnings.warn(
            f"the CTV reaches the edge of the region of interest (lesion ± {config.margin_mm:g} "
            "mm), which may cut it off: calibrate again with a larger --margin",
            DiagnosticsWarning,
            stacklevel=2,
        )
    volumes = patient.observations.volumes_ml()
    out_dir = Path(out_dir)
    with atomic_directory(out_dir) as tmp:
        written = write_posterior_maps(maps, tmp / "maps", patient.grid)
        summary = {
            "patient": patient.name,
            "sampler": config.sampler,
            "forward": config.forward,
            "parametrisation": config.priors.parametrisation,
            "roi_shape": list(roi.grid.shape),
            "roi_spacing_mm": config.spacing_mm,
            "brain_voxels": int(problem.data.voxel_index.shape[0]),
            "parameters": summarise(inference, roi, names),
            "diagnostics": {
                k: inference.diagnostics[k]
                for k in ("passed", "failures", "divergences", "min_ess_bulk", "smc")
            },
            "threshold_u": config.threshold_u,
            "ctv_probability": config.ctv_probability,
            "ctv_ml": written["ctv_ml"],
            "ctv_at_roi_edge": maps.ctv_at_roi_edge,
            "flair_ml": volumes.get("flair"),
            "t1c_ml": volumes.get("t1c"),
            "pde_check": None if refinement is None else refinement_summary(refinement),
            "runtime_s": None,
        }
        inference.datatree.to_netcdf(tmp / "posterior.nc", engine="h5netcdf")
        (tmp / "diagnostics.json").write_text(json.dumps(inference.diagnostics, indent=2))
        (tmp / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
        if refinement is not None:
            (tmp / "pde_check.md").write_text(format_refinement(refinement) + "\n")
        if config.plots:
            from bayestumor.workflows._plots import plot_density_slices, plot_trace

            (tmp / "figures").mkdir()
            plot_density_slices(
                maps, roi, tmp / "figures" / "slices.png", title=f"{patient.name}: posterior"
            )
            plot_trace(inference.datatree, tmp / "figures" / "trace.png", var_names=names)
        summary["runtime_s"] = time.perf_counter() - started
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2))
    if config.progress:
        print(format_diagnostics(inference.diagnostics))
        print(format_summary(summary))
        if refinement is not None:
            print(
                "\nsurrogate posterior checked against the PDE:\n" + format_refinement(refinement)
            )
    return CalibrationResult(
        datatree=inference.datatree, summary=summary, maps=maps, roi=roi, out_dir=out_dir
    )


def format_summary(summary: dict[str, Any], truth: dict[str, float] | None = None) -> str:
    """Posterior table (mean, sd, 90 % interval; true value when given) and volumes."""
    header = f"{'parameter':<12} {'mean':>10} {'sd':>10} {'5%':>10} {'95%':>10}"
    if truth:
        header += f" {'true':>10}  in 90%"
    lines = [header]
    for name, stats in summary["parameters"].items():
        line = (
            f"{name:<12} {stats['mean']:>10.4g} {stats['sd']:>10.3g} "
            f"{stats['q05']:>10.4g} {stats['q95']:>10.4g}"
        )
        if truth and name in truth:
            inside = stats["q05"] <= truth[name] <= stats["q95"]
            line += f" {truth[name]:>10.4g}  {'yes' if inside else 'NO'}"
        lines.append(f"{line}  [{stats['units']}]")
    flair = summary.get("flair_ml")
    lines.append(
        f"CTV {{P(u > {summary['threshold_u']:g}) ≥ {summary['ctv_probability']:g}}}: "
        f"{summary['ctv_ml']:.1f} ml; visible FLAIR: "
        + ("—" if flair is None else f"{flair:.1f} ml")
        + (
            " (the CTV reaches the ROI's edge: widen --margin)"
            if summary["ctv_at_roi_edge"]
            else ""
        )
    )
    if summary.get("runtime_s") is not None:
        lines.append(f"runtime {summary['runtime_s']:.1f} s")
    return "\n".join(lines)


__all__ = [
    "CalibrationConfig",
    "CalibrationResult",
    "build_forward",
    "calibrate_patient",
    "check_against_pde",
    "format_summary",
    "region_of_interest",
    "validate_patient",
]
