"""Options of a calibration, as plain data: JSON round trip, validated on construction.

Pure Python (no JAX), so that the command line can show every default without starting JAX.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from bayestumor.config._model_error import MODEL_ERRORS
from bayestumor.config._priors import Priors
from bayestumor.errors import InputError

DEFAULT_EPSILON = 1e-4
"""Default clipping of the MRI visibility probability α to [ε, 1 − ε] (no log 0)."""
DEFAULT_THRESHOLD_U = 0.05
"""Default u*: 5 % of the carrying capacity, below FLAIR visibility (u_c^FLAIR ≥ 0.05, Ezhov
et al. 2023), i.e. infiltration the scans cannot show."""
DEFAULT_CTV_PROBABILITY = 0.5
"""Default p of the CTV {P(u > u*) ≥ p}: the posterior-median contour."""
SMC_KERNELS = ("rmh", "hmc")
"""Inner kernels of tempered SMC (`bayestumor.inference.sample_smc`)."""
BUILTIN_SAMPLERS = ("nuts", "blackjax-nuts", "smc")
"""Samplers registered by `bayestumor.inference` (NumPyro NUTS, BlackJAX NUTS, BlackJAX SMC)."""
FORWARD_KINDS = ("pde", "surrogate")
TUMOUR_LABEL_CONVENTIONS = ("auto", "brats2021", "brats2023", "gliodil")
"""How a tumour label map is read: BraTS ≤ 2021 (1 necrotic, 2 oedema, 4 enhancing), BraTS 2023
(1, 2, 3 enhancing), GliODIL / BraTS-toolkit (1 necrotic, 3 oedema, 4 enhancing), or ``auto``
(detected only when unambiguous; `bayestumor.imaging.load_patient`)."""
PET_NORMALISATIONS = ("none", "max", "percentile", "tbr")
"""How PET uptake is mapped to [0, 1] when a patient is loaded: ``none`` (already normalised),
``max``, ``percentile`` (99th percentile of lesion uptake), ``tbr`` (tumour-to-background ratio);
`bayestumor.imaging.load_patient` defines each."""
SEED_SHAPES = ("gaussian", "heat-kernel")
"""Shapes of the initial condition (`bayestumor.forward.seed_density`): a Gaussian blob, or a
Gaussian cut to 0 at `HEAT_KERNEL_THRESHOLD` (TumorGrowthToolkit's seed)."""
HEAT_KERNEL_THRESHOLD = 0.1
"""Density at or below which the ``"heat-kernel"`` seed is set to 0 (TumorGrowthToolkit's cut)."""
LIKELIHOODS = ("calibrated", "exact")
"""How the scans enter the posterior: ``calibrated`` (a power likelihood whose learning rate η
is set from the spatial correlation of the misfit at the MAP,
`bayestumor.inference.misfit_learning_rate`) or ``exact`` (every voxel independent, η = 1)."""
DEFAULT_MISFIT_LENGTH_MM = 10.0
"""Bandwidth ℓ of the spatial kernel exp(−d²/2ℓ²) with which the misfit's correlation is
estimated (`bayestumor.inference.misfit_learning_rate`), mm: the middle of the 5–20 mm
correlation lengths of boundary errors the stress suite (`benchmarks/coverage.py`) draws."""
DEFAULT_REACTION_STEP = 0.05
"""Default bound on ρ·Δt per Heun step (`bayestumor.forward.FixedStep.reaction_step`)."""
PDE_STEPPINGS = ("split", "heun")
"""Time stepping of the PDE forward map: ``split`` (default; `bayestumor.forward.SplitStep`:
Strang splitting, the exact logistic flow and Runge–Kutta–Chebyshev diffusion) or ``heun``
(`bayestumor.forward.FixedStep`: Heun steps bounded by reaction accuracy ρ·Δt ≤
`reaction_step` and diffusion stability). Both are within 0.2 % of a tight reference in density
(`benchmarks/forward.py`). Measured on the eleven-parameter 4 mm phantom
(`benchmarks/calibration.py --spacing 4 --steppings heun split`): NUTS 3.8× faster with
``split`` (86 s against 327 s for 2 × (500 + 500) draws) and posterior means within 0.06
posterior sd of Heun's."""
DEFAULT_SPACING_MM = 2.0
"""`calibrate`'s grid when none is asked for (`CalibrationConfig.spacing_mm` None), mm: sampled
coarse-to-fine from `DEFAULT_COARSE_SPACING_MM` (8–9 minutes for the eleven-parameter 2 mm
phantom of `benchmarks/calibration.py` on a 2-core CPU), or the scans' own spacing where that is
coarser (`bayestumor.workflows.calibration_spacing_mm`)."""
DEFAULT_COARSE_SPACING_MM = 4.0
"""Grid of the coarse level of coarse-to-fine inference, mm (`CalibrationConfig.coarse_spacing_mm`):
the finest grid on which the full posterior is sampled in minutes on a laptop CPU."""
LESION_TISSUES = ("as-given", "white-matter", "brain")
"""Tissue of the lesion's (T1c ∪ FLAIR) voxels (`bayestumor.imaging.with_lesion_tissue`)."""


@dataclass(frozen=True)
class CalibrationConfig:
    """Options of `calibrate_patient` (JSON round trip with `to_dict` / `from_dict`).

    Attributes:
        forward: forward map kind, ``"pde"`` (Fisher–Kolmogorov finite volumes) or
            ``"surrogate"`` (needs `bayestumor.forward.surrogate.SurrogateForward`).
        sampler: ``"nuts"`` (NumPyro), ``"blackjax-nuts"`` or ``"smc"`` (BlackJAX tempered SMC);
            the names `bayestumor.inference.run_inference` knows.
        spacing_mm: isotropic voxel size of the region of interest, mm; None (default): the
            grid the method is built for (`bayestumor.workflows.calibration_spacing_mm`):
            `DEFAULT_SPACING_MM` (2 mm), or the scans' spacing where that is coarser (a grid
            finer than the scans adds solves, not information); with ``forward="surrogate"``
            the network's own grid (4 mm); with a ``discretisation_correction``, the coarse
            grid it corrects (`DEFAULT_COARSE_SPACING_MM`).
        margin_mm: margin around the FLAIR ∪ T1c bounding box that forms the ROI, mm: the
            first one tried (see ``roi_growth_rounds``).
        roi_growth_rounds: how often the ROI may be grown and the posterior sampled again when
            the posterior-mean density exceeds u*/2 on a face of the ROI (a face on the
            volume's edge excepted), so that the target volume is not cut off: each round the
            margin becomes 1.5 × margin + 2·√(D_w·T) of the posterior mean (the diffusion
            length), at least one voxel more, at most one voxel beyond the brain's bounding
            box (`bayestumor.workflows.sample_patient`); 0 disables growing (a warning then says
            when the CTV reaches the ROI's edge). The margins tried are in
            `CalibrationRun.roi_margins_mm`, the final one in the run's ``config.margin_mm``.
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
        stepping: the PDE's time stepping, one of `PDE_STEPPINGS`.
        reaction_step: PDE accuracy bound on ρ·Δt per Heun step (`FixedStep.reaction_step`);
            another than the default only with ``stepping="heun"``.
        pde_check_draws: with ``forward="surrogate"``, how many posterior draws (evenly
            thinned) to importance-reweight by the exact PDE likelihood, reporting PSIS k̂,
            weight ESS and the PDE-corrected means (`check_against_pde`); 0 skips the check.
        progress: progress bars and printed diagnostics.
        plots: write PNG figures.
        labels: how a tumour label map (``tumorseg``/``seg``) is read, one of
            `TUMOUR_LABEL_CONVENTIONS`: ``"auto"``, ``"brats2021"``, ``"brats2023"``,
            ``"gliodil"`` (`bayestumor.imaging.load_patient`).
        pet_normalise: how PET uptake is normalised on loading, one of `PET_NORMALISATIONS`:
            ``"none"`` (the file is normalised already), ``"max"``, ``"percentile"``, ``"tbr"``.
        seed_shape: the PDE's initial condition, ``"gaussian"`` or ``"heat-kernel"`` (the
            Gaussian cut where the density is ≤ 0.1, as TumorGrowthToolkit seeds;
            `bayestumor.forward.seed_density`). The surrogate knows the Gaussian only.
        seed_sigma_mm: the seed's width σ, mm; None: 4 mm, widened to the voxel size.
        seed_amplitude: the seed's peak density, in (0, 1] (above 0.1 for ``"heat-kernel"``).
        likelihood: ``"calibrated"`` (default): the per-voxel likelihood raised to a learning
            rate η ≤ 1 estimated from the spatial correlation of the misfit at the MAP, so that
            spatially correlated errors of the scans and of the model (a boundary a few mm off
            along a stretch) count as the few independent pieces of evidence they are; or
            ``"exact"``: every voxel independent (η = 1), exact when the scans are draws from
            the model itself. `bayestumor.inference.misfit_learning_rate` defines η.
        misfit_length_mm: bandwidth ℓ of the kernel with which the misfit's spatial
            correlation is estimated, mm (`DEFAULT_MISFIT_LENGTH_MM`).
        coarse_spacing_mm: coarse-to-fine inference when ``spacing_mm`` is finer than this:
            the posterior is sampled on a grid of this spacing over the same region (its
            likelihood tempered by the fine grid's η; twice the draws, every second one
            carried), its draws are carried to the fine grid by a Laplace-to-Laplace transport
            and moment matching and corrected by importance weights (PSIS k̂ < 0.7), or, where
            k̂ ≥ 0.7, start short fine-grid chains (`bayestumor.inference.refine_posterior`,
            `bayestumor.workflows.sample_coarse_to_fine`); None samples the fine grid
            directly.
        refine_warmup: warm-up iterations of those fine-grid chains.
        discretisation_correction: r ≥ 2: correct the PDE for the grid's discretisation error,
            measured at the mode against the PDE on a grid r times finer over the same region,
            on the patient's own anatomy there (`bayestumor.workflows.corrected_problem`;
            skipped when the scans are coarser than that grid); 0: no correction. Not with
            coarse-to-fine inference (refused).
        model_error: ``"stress-suite"`` (default): the reported μ_D,ref and μ_ρ,ref carry the
            model-form error measured on the stress suite (`STRESS_SUITE_MODEL_ERROR`, a
            log-normal factor independent of the data, by whether PET was given); ``"none"``:
            the model's posterior alone. Only the summary's intervals change; the posterior
            draws are the model's (`bayestumor.posterior.with_model_error`).
        lesion_tissue: the tissue of the lesion's voxels (T1c ∪ FLAIR), one of
            `LESION_TISSUES`: ``"as-given"`` (the maps as read), ``"white-matter"`` (wm = 1),
            ``"brain"`` (wm + gm = 1 in their given ratio, CSF 0);
            `bayestumor.imaging.with_lesion_tissue`.
    """

    forward: str = "pde"
    sampler: str = "nuts"
    spacing_mm: float | None = None
    margin_mm: float = 20.0
    roi_growth_rounds: int = 2
    chains: int = 2
    warmup: int = 300
    draws: int = 300
    seed: int = 0
    priors: Priors = field(default_factory=Priors)
    smc_particles: int = 256
    smc_kernel: str = "rmh"
    smc_mcmc_steps: int = 10
    max_tree_depth: int = 6
    map_start: bool = True
    threshold_u: float = DEFAULT_THRESHOLD_U
    ctv_probability: float = DEFAULT_CTV_PROBABILITY
    epsilon: float = DEFAULT_EPSILON
    stepping: str = "split"
    reaction_step: float = DEFAULT_REACTION_STEP
    pde_check_draws: int = 200
    progress: bool = True
    plots: bool = True
    labels: str = "auto"
    pet_normalise: str = "none"
    seed_shape: str = "gaussian"
    seed_sigma_mm: float | None = None
    seed_amplitude: float = 1.0
    lesion_tissue: str = "as-given"
    likelihood: str = "calibrated"
    misfit_length_mm: float = DEFAULT_MISFIT_LENGTH_MM
    coarse_spacing_mm: float | None = DEFAULT_COARSE_SPACING_MM
    refine_warmup: int = 100
    discretisation_correction: int = 0
    model_error: str = "stress-suite"

    def __post_init__(self):
        _check_seed_and_lesion(self)
        if self.labels not in TUMOUR_LABEL_CONVENTIONS:
            raise InputError(
                f"unknown tumour label convention {self.labels!r}; "
                f"choose from {TUMOUR_LABEL_CONVENTIONS}"
            )
        if self.pet_normalise not in PET_NORMALISATIONS:
            raise InputError(
                f"unknown PET normalisation {self.pet_normalise!r}; choose from {PET_NORMALISATIONS}"
            )
        if self.likelihood not in LIKELIHOODS:
            raise InputError(f"unknown likelihood {self.likelihood!r}; choose from {LIKELIHOODS}")
        if self.model_error not in MODEL_ERRORS:
            raise InputError(
                f"unknown model error {self.model_error!r}; choose from {MODEL_ERRORS}"
            )
        if self.stepping not in PDE_STEPPINGS:
            raise InputError(f"unknown PDE stepping {self.stepping!r}; choose from {PDE_STEPPINGS}")
        if self.stepping != "heun" and self.reaction_step != DEFAULT_REACTION_STEP:
            raise InputError(
                f"reaction_step bounds Heun steps and stepping is {self.stepping!r}: "
                "set stepping='heun' with it"
            )
        if self.forward not in FORWARD_KINDS:
            raise InputError(f"unknown forward model {self.forward!r}; choose from {FORWARD_KINDS}")
        if self.smc_kernel not in SMC_KERNELS:
            raise InputError(f"unknown SMC kernel {self.smc_kernel!r}; choose from {SMC_KERNELS}")
        if self.sampler not in BUILTIN_SAMPLERS:
            raise InputError(f"unknown sampler {self.sampler!r}; choose from {BUILTIN_SAMPLERS}")
        if self.spacing_mm is not None and not (
            math.isfinite(self.spacing_mm) and self.spacing_mm > 0
        ):
            raise InputError(f"spacing_mm must be positive (or None), got {self.spacing_mm}")
        positive = (
            "chains",
            "warmup",
            "draws",
            "smc_particles",
            "reaction_step",
            "misfit_length_mm",
            "refine_warmup",
        )
        for name in positive:
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise InputError(f"{name} must be positive, got {value}")
        for name in ("margin_mm", "pde_check_draws", "roi_growth_rounds"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise InputError(f"{name} must be ≥ 0, got {value}")
        refinement = self.discretisation_correction
        if refinement != int(refinement) or refinement == 1 or not 0 <= refinement <= 8:
            raise InputError(
                f"discretisation_correction must be 0 (none) or a refinement in 2 … 8, "
                f"got {refinement}"
            )
        coarse = self.coarse_spacing_mm
        if coarse is not None and not (math.isfinite(coarse) and coarse > 0):
            raise InputError(f"coarse_spacing_mm must be positive (or None), got {coarse}")
        if refinement and self.spacing_mm is not None and self.coarse_to_fine:
            raise InputError(
                f"discretisation_correction corrects a grid sampled directly; at spacing "
                f"{self.spacing_mm:g} mm the posterior is sampled coarse-to-fine from "
                f"{coarse:g} mm: set coarse_spacing_mm to None (--coarse-spacing 0) to use it"
            )
        if isinstance(self.priors, dict):
            object.__setattr__(self, "priors", Priors.from_dict(self.priors))

    def replace(self, **changes: Any) -> CalibrationConfig:
        """A copy with some options changed."""
        return dataclasses.replace(self, **changes)

    @property
    def coarse_to_fine(self) -> bool:
        """Whether the posterior is sampled coarse-to-fine (``coarse_spacing_mm``)."""
        if self.spacing_mm is None:
            raise ValueError(
                "coarse_to_fine is decided once the grid is: "
                "bayestumor.workflows.calibration_spacing_mm"
            )
        return self.coarse_spacing_mm is not None and self.spacing_mm < self.coarse_spacing_mm

    def load_options(self) -> dict[str, str]:
        """The options of `bayestumor.imaging.load_patient` (``labels``, ``pet_normalise``), as
        keywords: how a patient directory is read under this configuration."""
        return {"labels": self.labels, "pet_normalise": self.pet_normalise}

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


def _check_seed_and_lesion(config: CalibrationConfig) -> None:
    """Raise `InputError` for unusable initial-condition or lesion-tissue options."""
    if config.seed_shape not in SEED_SHAPES:
        raise InputError(f"unknown seed shape {config.seed_shape!r}; choose from {SEED_SHAPES}")
    sigma = config.seed_sigma_mm
    if sigma is not None and not (math.isfinite(sigma) and sigma > 0):
        raise InputError(f"seed_sigma_mm must be positive (or None), got {sigma}")
    amplitude = config.seed_amplitude
    if not (math.isfinite(amplitude) and 0.0 < amplitude <= 1.0):
        raise InputError(f"seed_amplitude must be in (0, 1], got {amplitude}")
    if config.seed_shape == "heat-kernel" and amplitude <= HEAT_KERNEL_THRESHOLD:
        raise InputError(
            f"a heat-kernel seed needs seed_amplitude above its cut {HEAT_KERNEL_THRESHOLD}, "
            f"got {amplitude}"
        )
    trained_seed = (
        config.seed_shape == "gaussian"
        and config.seed_sigma_mm in (None, 4.0)
        and config.seed_amplitude == 1.0
    )
    if config.forward == "surrogate" and config.priors.seed_sigma is not None:
        raise InputError(
            "the surrogate was trained on one seed width (4 mm); priors.seed_sigma needs "
            "forward='pde'"
        )
    if config.forward == "surrogate" and config.priors.seed_amplitude is not None:
        raise InputError(
            "the surrogate was trained on one seed amplitude (1); priors.seed_amplitude needs "
            "forward='pde'"
        )
    if config.forward == "surrogate" and config.priors.gm_ratio is not None:
        raise InputError(
            "the surrogate was trained at one grey/white ratio (10); priors.gm_ratio needs "
            "forward='pde'"
        )
    if config.forward == "surrogate" and not trained_seed:
        raise InputError(
            "the surrogate was trained on the default seed (a 4 mm Gaussian of amplitude 1); "
            f"seed_shape={config.seed_shape!r}, seed_sigma_mm={config.seed_sigma_mm}, "
            f"seed_amplitude={config.seed_amplitude} need forward='pde'"
        )
    if config.lesion_tissue not in LESION_TISSUES:
        raise InputError(
            f"unknown lesion tissue {config.lesion_tissue!r}; choose from {LESION_TISSUES}"
        )
