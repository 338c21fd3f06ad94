"""Prior ranges of the growth and imaging parameters, with their units and sources.

Growth parameters (Fisher–Kolmogorov; D_w in white matter, D_g = D_w / 10):

- ``D_w`` log-uniform on [0.01, 1.0] mm²/day. GliomaSolver (Lipkova et al. 2019, log-uniform,
  given in cm²/day there) uses ≈ 0.013–3.8 mm²/day; Ezhov et al. (2023, Table I) use a narrower
  range. The default covers the realistic glioblastoma range of both and stops at 1 mm²/day,
  where with T ≤ 1000 days the diffusion length √(D_w T) ≈ 32 mm already spans a hemisphere.
- ``rho`` log-uniform on [0.002, 0.2] /day (GliomaSolver ≈ 0.0027–0.19 /day; Ezhov et al.
  0.001–0.03 /day).
- ``T`` log-uniform on [30, 1000] days since the seed (Ezhov et al., Table I).
- Scale-free alternative (one time point only identifies these; see `GrowthParams`):
  ``mu_D = √(D_w T)`` log-uniform on [1, 30] mm and ``mu_rho = √(ρ T)`` log-uniform on [1, 8]
  (ρT from 1 to 64 e-folds), the ranges the physical defaults imply for visible tumours.
- Seed ``seed_x, seed_y, seed_z`` (world mm): Normal centred on the T1c centre of mass
  (`Patient.lesion_center_mm`), sd ``seed_sd_mm`` = 10 mm, truncated to the region of interest.
- Seed width ``seed_sigma`` (mm), off by default (None: the forward map's fixed width, 4 mm or
  the voxel). T counts from a seed of some size, and tools disagree on it: TumorGrowthToolkit's
  (σ ≈ 3.2 mm, peak 0.5, cut at 0.1) holds as many cells as a peak-1 Gaussian of σ ≈ 2.5 mm, ours
  σ = 4 mm four times more — about 1.4 proliferation e-folds of ρT. A range such as
  `SEED_SIGMA_RANGE_MM` (log-uniform, 2–8 mm: a 64-fold range of initial cell numbers) makes the
  width a nuisance parameter, so that μ_ρ and μ_D carry the uncertainty of the seed's size.
- Seed amplitude ``seed_amplitude`` (peak density), off by default (None: the forward map's
  own, 1). Width alone cannot stand for another tool's seed: TumorGrowthToolkit's peaks at 0.5,
  whose centre still proliferates, where a peak-1 seed's is saturated; on stress patients grown
  from that seed a peak-1 fit put μ_ρ 13–22 % low with the width free, a peak-0.25 one within
  4 % (and at a higher posterior density). `SEED_AMPLITUDE_RANGE` (log-uniform, 0.2–1) makes it
  a nuisance parameter beside the width.
- Grey/white diffusivity ratio ``gm_ratio`` = D_w / D_g, off by default (None: the forward map's
  own, 10). Swanson et al. (2000) took 5, Jbabdi et al. (2005), Konukoglu et al. (2010) and most
  later work 10; nothing in one scan pins it. `GM_RATIO_RANGE` (log-uniform, 3–30, centred on
  10 in log space) makes it a nuisance parameter: on 28 stress patients (8 grown at a ratio of
  5) the 90 % intervals of μ_D,ref then covered 26 against 23 with the ratio fixed at 10, at
  widths 23 % against 20 % (README, "Another tool's tissue contrast").

PET bias ``pet_bias``, off by default (None): uptake proportional to density everywhere is an
approximation — FET uptake also follows perfusion and blood–brain-barrier leakage, and scatter,
attenuation and partial-volume correction leave smooth gains across a region. With ``pet_bias`` = τ the PET uptake is
b·u·exp(f(x)), f a smooth field over the region of interest — a polynomial of degree 2 in the
voxel's position relative to the ROI's centre in units of `PET_BIAS_SCALE_MM` (9 coefficients),
each coefficient Normal(0, τ²): the model-discrepancy term of Kennedy & O'Hagan (2001), here
multiplicative and low-rank. `PET_BIAS_SD` = 0.2 lets the gain vary by about ±20 % over 30 mm.
Without it, a smooth gain of 20 % sd (``pet-bias`` of the stress suite) moved the exact
posterior's mode by tens of posterior sds (`benchmarks/coverage.py`).

Imaging parameters (Ezhov et al. 2023, Table I; dimensionless unless stated):

- ``u_c_t1c`` uniform on [0.6, 0.8], ``u_c_flair`` uniform on [0.05, 0.6] (visibility thresholds),
- ``sigma_alpha`` uniform on [0.05, 0.08] (width of the visibility transition in density, with
  ``visibility="density"``, the default),
- ``boundary_sd`` uniform on [0.25, 4] mm (with ``visibility="boundary"``: the sd of a
  segmentation contour's position about the model's u = u_c surface; inter-rater and
  registration errors of glioma contours are of 1–3 mm),
- ``b`` uniform on [0.6, 1.02] (PET uptake per unit density), ``sigma`` uniform on
  [0.01, 0.25] (PET noise sd, normalised uptake units).

How a segmentation sees density (``visibility``): ``"density"`` is the visibility curve of
Lipkova et al. (2019), a voxel seen with probability α(u) that rises from 0 to 1 over a density
band of width σ_α around u_c; ``"boundary"`` puts the uncertainty where a contour's errors are,
in its position: a voxel at signed distance d from the surface u = u_c is inside the contour
with probability Φ(d / boundary_sd), d ≈ (u − u_c)/|∇u| (`bayestumor.model.boundary_visibility`).
A density band is a band of distances that narrows where the front is steep, so under
``"density"`` a fit can gain by steepening the front at the contours (smaller μ_D, larger μ_ρ):
on the demo's sharp masks without PET its mode put μ_D 27 % low, under ``"boundary"`` 2 % high.

Every entry is either a ``(low, high)`` range or a single number, which fixes the parameter
(useful for fast tests and for parameters known from elsewhere).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from bayestumor.errors import InputError

Spec = float | tuple[float, float]
"""A prior range ``(low, high)`` or a fixed value."""

SEED_SIGMA_RANGE_MM = (2.0, 8.0)
"""A log-uniform range for the seed width as a nuisance parameter, mm (module docstring)."""
SEED_AMPLITUDE_RANGE = (0.2, 1.0)
"""A log-uniform range for the seed's peak density as a nuisance parameter (module docstring)."""
GM_RATIO_RANGE = (3.0, 30.0)
"""A log-uniform range for the grey/white diffusivity ratio D_w / D_g as a nuisance parameter
(module docstring)."""

PET_BIAS_SD = 0.2
"""A prior sd τ of the PET bias field's coefficients (module docstring)."""
PET_BIAS_SCALE_MM = 30.0
"""Length unit of the PET bias field's polynomial, mm: a coefficient τ is a gain change of
about τ over this distance."""

GROWTH_NAMES_PHYSICAL = ("D_w", "rho", "T")
GROWTH_NAMES_SCALE_FREE = ("mu_D", "mu_rho")
SEED_NAMES = ("seed_x", "seed_y", "seed_z")
IMAGING_NAMES = ("u_c_t1c", "u_c_flair", "sigma_alpha", "boundary_sd", "b", "sigma")
VISIBILITIES = ("density", "boundary")
"""How a segmentation sees density (module docstring)."""
LOG_UNIFORM = frozenset(
    {"D_w", "rho", "T", "mu_D", "mu_rho", "seed_sigma", "seed_amplitude", "gm_ratio"}
)
"""Parameters whose prior is uniform in log space (they are sampled as ``log_<name>``)."""

UNITS = {
    "D_w": "mm^2/day",
    "rho": "1/day",
    "T": "day",
    "mu_D": "mm",
    "mu_rho": "1",
    "mu_D_ref": "mm",
    "mu_rho_ref": "1",
    "seed_x": "mm",
    "seed_y": "mm",
    "seed_z": "mm",
    "seed_sigma": "mm",
    "seed_amplitude": "1",
    "gm_ratio": "1",
    "u_c_t1c": "1",
    "u_c_flair": "1",
    "sigma_alpha": "1",
    "boundary_sd": "mm",
    "b": "1",
    "sigma": "1",
}


@dataclass(frozen=True)
class Priors:
    """Prior of the calibration (see the module docstring for the sources of the defaults).

    Attributes:
        parametrisation: ``"physical"`` (D_w, ρ, T) or ``"scale_free"`` (μ_D, μ_ρ).
        D_w: mm²/day, log-uniform range or fixed value.
        rho: 1/day, log-uniform range or fixed value.
        T: days, log-uniform range or fixed value.
        mu_D: mm, log-uniform range or fixed value (scale-free only).
        mu_rho: dimensionless, log-uniform range or fixed value (scale-free only).
        seed_sd_mm: sd of the seed prior around the lesion centre, mm (> 0).
        seed_sigma: the seed's width, mm: a log-uniform range (a nuisance parameter, e.g.
            `SEED_SIGMA_RANGE_MM`), a fixed value, or None (the forward map's own width).
        seed_amplitude: the seed's peak density in (0, 1]: a log-uniform range (a nuisance
            parameter, e.g. `SEED_AMPLITUDE_RANGE`), a fixed value, or None (the forward map's
            own amplitude).
        gm_ratio: the grey/white diffusivity ratio D_w / D_g ≥ 1: a log-uniform range (a
            nuisance parameter, e.g. `GM_RATIO_RANGE`), a fixed value, or None (the forward
            map's own, 10).
        visibility: how a segmentation sees density, ``"density"`` (the band σ_α) or
            ``"boundary"`` (contour position sd ``boundary_sd``, mm); module docstring.
        u_c_t1c, u_c_flair, sigma_alpha, boundary_sd, b, sigma: uniform ranges or fixed values.
        pet_bias: prior sd τ of the coefficients of a smooth multiplicative PET gain field
            (module docstring; e.g. `PET_BIAS_SD`), or None: uptake b·u everywhere.
    """

    parametrisation: str = "physical"
    D_w: Spec = (0.01, 1.0)
    rho: Spec = (0.002, 0.2)
    T: Spec = (30.0, 1000.0)
    mu_D: Spec = (1.0, 30.0)
    mu_rho: Spec = (1.0, 8.0)
    seed_sd_mm: float = 10.0
    seed_sigma: Spec | None = None
    seed_amplitude: Spec | None = None
    gm_ratio: Spec | None = None
    u_c_t1c: Spec = (0.6, 0.8)
    u_c_flair: Spec = (0.05, 0.6)
    sigma_alpha: Spec = (0.05, 0.08)
    visibility: str = "density"
    boundary_sd: Spec = (0.25, 4.0)
    b: Spec = (0.6, 1.02)
    sigma: Spec = (0.01, 0.25)
    pet_bias: float | None = None

    def __post_init__(self):
        if self.parametrisation not in ("physical", "scale_free"):
            raise InputError(f"unknown parametrisation {self.parametrisation!r}")
        if self.visibility not in VISIBILITIES:
            raise InputError(f"unknown visibility {self.visibility!r}; known: {VISIBILITIES}")
        if self.pet_bias is not None and not (math.isfinite(self.pet_bias) and self.pet_bias > 0):
            raise InputError(f"pet_bias is a prior sd and must be positive, got {self.pet_bias}")
        if not (math.isfinite(self.seed_sd_mm) and self.seed_sd_mm > 0):
            raise InputError(f"seed_sd_mm must be positive, got {self.seed_sd_mm}")
        names = GROWTH_NAMES_PHYSICAL + GROWTH_NAMES_SCALE_FREE + IMAGING_NAMES
        if self.seed_sigma is not None:
            names += ("seed_sigma",)
        if self.seed_amplitude is not None:
            names += ("seed_amplitude",)
            if bounds(self.seed_amplitude)[1] > 1.0:
                raise InputError(f"seed_amplitude is a peak density ≤ 1, got {self.seed_amplitude}")
        if self.gm_ratio is not None:
            names += ("gm_ratio",)
            if bounds(self.gm_ratio)[0] < 1.0:
                raise InputError(f"gm_ratio = D_w / D_g must be ≥ 1, got {self.gm_ratio}")
        for name in names:
            spec = getattr(self, name)
            if isinstance(spec, list):
                spec = tuple(spec)
                object.__setattr__(self, name, spec)
            low, high = bounds(spec)
            if not (math.isfinite(low) and math.isfinite(high) and low <= high):
                raise InputError(f"prior of {name} must be a finite range low ≤ high, got {spec}")
            if isinstance(spec, tuple) and low == high:
                raise InputError(f"prior range of {name} is empty: {spec}")
            if name in LOG_UNIFORM and low <= 0:
                raise InputError(f"{name} is log-uniform and needs positive bounds, got {spec}")

    @property
    def growth_names(self) -> tuple[str, ...]:
        """Names of the growth parameters of this parametrisation, seed excluded."""
        if self.parametrisation == "physical":
            return GROWTH_NAMES_PHYSICAL
        return GROWTH_NAMES_SCALE_FREE

    @property
    def seed_width_free(self) -> bool:
        """Whether the seed width is sampled (a range), not fixed or the forward map's own."""
        return self.seed_sigma is not None and not is_fixed(self.seed_sigma)

    @property
    def seed_amplitude_free(self) -> bool:
        """Whether the seed's peak density is sampled (a range)."""
        return self.seed_amplitude is not None and not is_fixed(self.seed_amplitude)

    @property
    def gm_ratio_free(self) -> bool:
        """Whether the grey/white diffusivity ratio is sampled (a range)."""
        return self.gm_ratio is not None and not is_fixed(self.gm_ratio)

    @property
    def seed_nuisance_names(self) -> tuple[str, ...]:
        """The seed's sampled shape parameters (``seed_sigma``, ``seed_amplitude``), if any."""
        return tuple(
            name
            for name, free in (
                ("seed_sigma", self.seed_width_free),
                ("seed_amplitude", self.seed_amplitude_free),
            )
            if free
        )

    @property
    def nuisance_names(self) -> tuple[str, ...]:
        """The sampled nuisance parameters of the growth model: the seed's shape
        (`seed_nuisance_names`) and the grey/white ratio."""
        return self.seed_nuisance_names + (("gm_ratio",) if self.gm_ratio_free else ())

    def max_diffusion_and_reaction(self) -> tuple[float, float]:
        """Upper ends of D_w·T (mm²) and ρ·T over the prior, for `PDEForward.sized_for`."""
        if self.parametrisation == "physical":
            t_high = bounds(self.T)[1]
            return bounds(self.D_w)[1] * t_high, bounds(self.rho)[1] * t_high
        return bounds(self.mu_D)[1] ** 2, bounds(self.mu_rho)[1] ** 2

    def scale_free_ranges(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """Ranges of μ_D = √(D_w T) (mm) and μ_ρ = √(ρT) the prior covers, whatever the
        parametrisation (the box's corners in the physical one)."""
        if self.parametrisation == "scale_free":
            return bounds(self.mu_D), bounds(self.mu_rho)
        d, r, t = bounds(self.D_w), bounds(self.rho), bounds(self.T)
        return (
            (math.sqrt(d[0] * t[0]), math.sqrt(d[1] * t[1])),
            (math.sqrt(r[0] * t[0]), math.sqrt(r[1] * t[1])),
        )

    def replace(self, **changes: Any) -> Priors:
        """A copy with some entries changed."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (ranges become lists)."""
        return {
            field.name: list(value) if isinstance(value, tuple) else value
            for field in dataclasses.fields(self)
            for value in [getattr(self, field.name)]
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Priors:
        """Inverse of `to_dict`; unknown keys raise `ValueError`."""
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = set(values) - names
        if unknown:
            raise InputError(f"unknown prior entries: {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def bounds(spec: Spec) -> tuple[float, float]:
    """``(low, high)`` of a prior spec; a fixed value gives ``(value, value)``."""
    if isinstance(spec, tuple | list):
        if len(spec) != 2:
            raise InputError(f"a prior range needs two numbers, got {spec}")
        return float(spec[0]), float(spec[1])
    return float(spec), float(spec)


def is_fixed(spec: Spec) -> bool:
    """True when the spec is a single number (the parameter is not sampled)."""
    return not isinstance(spec, tuple | list)


__all__ = [
    "GM_RATIO_RANGE",
    "GROWTH_NAMES_PHYSICAL",
    "GROWTH_NAMES_SCALE_FREE",
    "IMAGING_NAMES",
    "SEED_AMPLITUDE_RANGE",
    "SEED_NAMES",
    "SEED_SIGMA_RANGE_MM",
    "UNITS",
    "VISIBILITIES",
    "Priors",
    "Spec",
    "bounds",
    "is_fixed",
]
