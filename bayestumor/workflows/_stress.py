"""Synthetic patients whose scans are *not* drawn from the calibration model: the stress suite.

A posterior that covers the truth only when the data come from the model itself says little
about patients. Each configuration here makes a patient with known parameters by a route that
differs from the calibration model in one named way (besides the sharp-threshold masks and
clipped PET that every configuration shares, as real scans have):

- ``threshold``: the calibration PDE on the calibration grid; masks are thresholds of u (no
  Bernoulli noise) and PET is b·u + noise clipped to [0, 1]. The mildest misfit.
- ``resolution``: the calibration PDE on a grid `DATA_REFINEMENT` times finer than the
  calibration grid (2 mm data for a 4 mm calibration, 1 mm for 2 mm).
- ``solver``: another group's kind of solver (`explicit_euler_fk`): explicit Euler at its
  stability limit, arithmetic instead of harmonic face diffusivities, a grey/white diffusivity
  ratio of 1/5 instead of 1/10, and TumorGrowthToolkit's seed (a heat kernel of σ = √10 mm and
  amplitude ≈ 0.5, cut at 0.1) instead of a 4 mm Gaussian of amplitude 1; on the fine grid.
- ``boundary``: the calibration PDE on the fine grid, each segmentation moved by its own smooth random
  displacement field (sd 1–3 mm, correlation length 5–20 mm; `displaced_mask`), as a rater's
  or a registration's error moves a contour along a stretch.
- ``pet-bias``: the calibration PDE on the fine grid, PET with a smooth multiplicative bias field (±20 %
  sd, 30 mm correlation; `smooth_field`) before clipping.
- ``mri-only``: ``resolution`` without PET, as most patients come: the sharp T1c and FLAIR
  contours alone carry the growth, so the segmentations' visibility law is what is tested
  (`bayestumor.config.Priors.visibility`).

The truth of each patient is recorded in the generator's own terms (D_w, ρ, T, μ_D, μ_ρ and the
seed). For ``solver`` that is the other solver's T, measured from its own (smaller) seed: a
posterior that claims to know T "since a seed of our size" must be wide enough to contain it.
The truth also holds μ_D,ref and μ_ρ,ref, the growth re-expressed from the reference seed
(`bayestumor.forward.matched_reference_growth`, with the generator's seed: for ``solver`` its
heat kernel, `TUMOR_GROWTH_TOOLKIT_SEED`), which a calibration with the seed's size free reports.

`benchmarks/coverage.py` calibrates many such patients and measures coverage; the tests run a
few of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from scipy import ndimage

from bayestumor._custom_types import PRNGKeyArray
from bayestumor.config import SEED_NAMES
from bayestumor.forward import (
    DEFAULT_GM_RATIO,
    REFERENCE_SEED,
    TUMOR_GROWTH_TOOLKIT_SEED,
    GrowthParams,
    PDEForward,
    matched_reference_growth,
)
from bayestumor.imaging import Anatomy, Observations, Patient, load_mni152
from bayestumor.workflows._synthetic import ImagingParams, simulate_patient

STRESS_CONFIGURATIONS = ("threshold", "resolution", "solver", "boundary", "pet-bias", "mri-only")
"""The ways a stress patient's data differ from the calibration model (module docstring)."""
DATA_REFINEMENT = 2
"""The data of every configuration but ``threshold`` are made on a grid this many times finer
than the calibration grid."""
SOLVER_GM_RATIO = 5.0
"""The ``solver`` configuration's grey/white diffusivity ratio D_w / D_g (Swanson et al. 2000)."""
SOLVER_REACTION_STEP = 0.01
"""Bound on ρΔt per explicit-Euler step of the ``solver`` configuration (`explicit_euler_fk`):
a 0.5 % error of the growth exponent."""
CROP_MM = 96.0
"""Edge of the cube of MNI152 anatomy a stress patient lives in, mm."""
SEED_REGION_MNI_MM = ((-28.0, -10.0, 20.0), (28.0, 12.0, 24.0), (-26.0, 20.0, 10.0))
"""Centres of the deep white-matter regions seeds are drawn around (MNI mm; ±8 mm each)."""
TRUE_T_DAYS = 250.0
"""T of every stress patient; the scans identify μ_D and μ_ρ, not T."""


@dataclass(frozen=True, eq=False)
class StressCase:
    """One stress patient.

    Attributes:
        patient: the scans and anatomy (on the data grid).
        truth: true values by parameter name (growth, scale-free, seed, imaging).
        density: the true tumour-cell density on the data grid, for checking P(u > u*).
        configuration: one of `STRESS_CONFIGURATIONS`.
    """

    patient: Patient
    truth: dict[str, float]
    density: np.ndarray
    configuration: str


def smooth_field(
    key: PRNGKeyArray, shape: tuple[int, ...], spacing_mm: float, length_mm: float
) -> np.ndarray:
    """A stationary, zero-mean Gaussian random field of unit sd whose correlation falls as
    exp(−d² / 4ℓ²) with ℓ = `length_mm` (periodic white noise blurred by a Gaussian of sd ℓ),
    on a grid of `shape` and isotropic `spacing_mm`.

    The blur is divided by its kernel's norm, the field's exact sd, not by the sample sd of the
    one draw: on a grid not much larger than ℓ the draw is nearly constant, and dividing by its
    small sample sd would blow its random mean up to an offset of many sds."""
    sigma = length_mm / spacing_mm
    noise = np.asarray(jax.random.normal(key, shape), np.float64)
    field = ndimage.gaussian_filter(noise, sigma, mode="wrap")
    impulse = np.zeros(shape)
    impulse[(0,) * len(shape)] = 1.0
    kernel = ndimage.gaussian_filter(impulse, sigma, mode="wrap")
    return field / np.sqrt(np.sum(kernel**2))


def displaced_mask(
    mask: np.ndarray, spacing_mm: float, key: PRNGKeyArray, sd_mm: float, length_mm: float
) -> np.ndarray:
    """`mask` moved by a smooth random displacement field v (each component a `smooth_field`
    scaled to sd `sd_mm`): the new mask at x is the old one at x + v(x) (linear interpolation
    of the 0/1 image, kept where ≥ 0.5)."""
    keys = jax.random.split(key, 3)
    grid = np.indices(mask.shape, dtype=np.float64)
    displacement = np.stack(
        [smooth_field(k, mask.shape, spacing_mm, length_mm) * sd_mm / spacing_mm for k in keys]
    )
    moved = ndimage.map_coordinates(
        mask.astype(np.float64), grid + displacement, order=1, mode="nearest"
    )
    return moved >= 0.5


def explicit_euler_fk(
    anatomy: Anatomy,
    params: GrowthParams,
    *,
    gm_ratio: float = SOLVER_GM_RATIO,
    seed_sigma_mm: float = float(TUMOR_GROWTH_TOOLKIT_SEED["seed_sigma_mm"]),
    seed_amplitude: float = float(TUMOR_GROWTH_TOOLKIT_SEED["seed_amplitude"]),
    seed_cut: float = 0.1,
    courant: float = 0.99,
    reaction_step: float | None = SOLVER_REACTION_STEP,
) -> np.ndarray:
    """Fisher–Kolmogorov by another route than `PDEForward`, in NumPy: explicit Euler at
    `courant` × its stability limit Δt = h² / (2·∑ₐ max face D), shortened where needed to
    ρΔt ≤ `reaction_step` (None: the stability limit alone), arithmetic-mean face
    diffusivities, D = D_w (p_wm + p_gm / `gm_ratio`), zero flux at the box's faces, and a
    heat-kernel seed (amplitude · exp(−r²/2σ²), set to 0 at or below `seed_cut`) at the voxel
    centres. Independent of the package's solver by construction (for the stress suite).

    Why the reaction bound: at the suite's small diffusivities on a 2 mm grid the stability
    limit alone allows steps of 10–26 days, ρΔt of 0.13–0.6, where Euler's growth factor 1 + ρΔt
    falls short of e^{ρΔt}: measured on the first stress patient, 15 % less tumour mass at T
    than a tight solve of the same equation, seed and anatomy (our default solver: 0.1 %). That
    is the generator's own error, not a property of tumours or of tools run where they are
    accurate, and no calibration should be asked to cover it.
    """
    grid = anatomy.grid
    h = float(grid.spacing_mm[0])
    k = np.clip(anatomy.wm + anatomy.gm / gm_ratio, 0.0, 1.0).astype(np.float64)
    d_w, rho, t_end = (float(params.D_w), float(params.rho), float(params.T))
    faces = []
    for axis in range(3):
        lo = np.take(k, range(k.shape[axis] - 1), axis=axis)
        hi = np.take(k, range(1, k.shape[axis]), axis=axis)
        faces.append(d_w * 0.5 * (lo + hi) / h**2)
    bound = sum(float(f.max()) for f in faces)
    dt = courant / (2.0 * bound) if bound > 0 else t_end
    if reaction_step is not None and rho > 0:
        dt = min(dt, reaction_step / rho)
    steps = max(1, math.ceil(t_end / dt))
    dt = t_end / steps
    centres = np.stack(np.meshgrid(*[np.arange(n) for n in grid.shape], indexing="ij"), -1)
    world = (
        centres.reshape(-1, 3) @ np.asarray(grid.affine)[:3, :3].T + np.asarray(grid.affine)[:3, 3]
    )
    r2 = np.sum(np.square(world - np.asarray(params.seed_mm, np.float64)), axis=1)
    u = seed_amplitude * np.exp(-0.5 * r2 / seed_sigma_mm**2).reshape(grid.shape)
    u = np.where((u > seed_cut) & (k > 0), u, 0.0)
    for _ in range(steps):
        divergence = np.zeros_like(u)
        for axis, face in enumerate(faces):
            flux = face * np.diff(u, axis=axis)
            pad_low = [(0, 0)] * 3
            pad_low[axis] = (1, 0)
            pad_high = [(0, 0)] * 3
            pad_high[axis] = (0, 1)
            divergence += np.pad(flux, pad_high) - np.pad(flux, pad_low)
        u = u + dt * (divergence + rho * u * (1.0 - u))
    return np.clip(u, 0.0, 1.0).astype(np.float32)


def _draw_truth(key: PRNGKeyArray, anatomy: Anatomy) -> tuple[GrowthParams, ImagingParams]:
    """Growth parameters (μ_D ∈ [2.5, 4] mm, μ_ρ ∈ [1.8, 2.4], T = `TRUE_T_DAYS`: fronts
    ≈ 2 μ_D μ_ρ ≈ 9–19 mm from the seed, small lesions that keep the suite affordable), a seed in white
    matter (wm ≥ 0.9) within 8 mm of the centre of `anatomy`, and imaging thresholds (u_c^T1c ∈ [0.6, 0.8], u_c^FLAIR ∈
    [0.15, 0.35])."""
    keys = jax.random.split(key, 4)
    mu_d = float(jax.random.uniform(keys[0], minval=2.5, maxval=4.0))
    mu_rho = float(jax.random.uniform(keys[1], minval=1.8, maxval=2.4))
    white = np.argwhere(anatomy.wm >= 0.9)
    offset_mm = (white - (np.array(anatomy.shape) - 1) / 2) * anatomy.grid.spacing_mm[0]
    near = white[np.linalg.norm(offset_mm, axis=1) <= 8.0]
    pick = near if len(near) else white
    voxel = pick[int(jax.random.randint(keys[2], (), 0, len(pick)))]
    seed = anatomy.grid.voxel_to_world(voxel[None])[0]
    thresholds = jax.random.uniform(keys[3], (2,))
    imaging = ImagingParams(
        u_c_t1c=0.6 + 0.2 * float(thresholds[0]), u_c_flair=0.15 + 0.2 * float(thresholds[1])
    )
    params = GrowthParams(
        D_w=jnp.float32(mu_d**2 / TRUE_T_DAYS),
        rho=jnp.float32(mu_rho**2 / TRUE_T_DAYS),
        T=jnp.float32(TRUE_T_DAYS),
        seed_mm=jnp.asarray(seed, jnp.float32),
    )
    return params, imaging


def stress_case(
    configuration: str, key: PRNGKeyArray, *, calibration_spacing_mm: float = 4.0
) -> StressCase:
    """A stress patient of `configuration` (one of `STRESS_CONFIGURATIONS`; module docstring),
    drawn with `key`: a `CROP_MM` cube of MNI152 anatomy around one of `SEED_REGION_MNI_MM`.

    Raises:
        ValueError: unknown configuration.
    """
    if configuration not in STRESS_CONFIGURATIONS:
        raise ValueError(f"unknown configuration {configuration!r}; one of {STRESS_CONFIGURATIONS}")
    spacing = calibration_spacing_mm
    if configuration != "threshold":
        spacing /= DATA_REFINEMENT
    key_region, key_jitter, key_truth, key_scan, key_extra = jax.random.split(key, 5)
    region = np.asarray(SEED_REGION_MNI_MM[int(jax.random.randint(key_region, (), 0, 3))])
    centre = region + np.asarray(jax.random.uniform(key_jitter, (3,), minval=-8.0, maxval=8.0))
    anatomy = load_mni152(spacing).cropped_cube(centre, round(CROP_MM / spacing))
    params, imaging = _draw_truth(key_truth, anatomy)
    if configuration == "solver":
        density = explicit_euler_fk(anatomy, params)
        patient = _scans_of(anatomy, density, imaging, key_scan)
    else:
        forward = PDEForward.from_anatomy(anatomy)
        forward = forward.with_max_steps(forward.stable_steps(params) + 1)
        density = np.asarray(forward(params), np.float32)
        patient = simulate_patient(
            anatomy, params, imaging, key_scan, forward=forward, name=configuration
        )
    if configuration == "boundary":
        patient = _with_displaced_boundaries(patient, key_extra)
    if configuration == "pet-bias":
        bias = 1.0 + 0.2 * smooth_field(key_extra, anatomy.shape, spacing, 30.0)
        pet = np.clip(patient.observations.pet * bias, 0.0, 1.0).astype(np.float32)
        patient = _with_observations(patient, pet=pet)
    if configuration == "mri-only":
        patient = _with_observations(patient, pet=None)
    seed = TUMOR_GROWTH_TOOLKIT_SEED if configuration == "solver" else REFERENCE_SEED
    mu_D_ref, mu_rho_ref, _ = matched_reference_growth(params.mu_D, params.mu_rho, **seed)
    truth = {
        "D_w": float(params.D_w),
        "rho": float(params.rho),
        "T": float(params.T),
        "mu_D": float(params.mu_D),
        "mu_rho": float(params.mu_rho),
        "mu_D_ref": float(mu_D_ref[0]),
        "mu_rho_ref": float(mu_rho_ref[0]),
        "gm_ratio": SOLVER_GM_RATIO if configuration == "solver" else DEFAULT_GM_RATIO,
        **{name: float(v) for name, v in zip(SEED_NAMES, params.seed_mm, strict=True)},
        **imaging._asdict(),
    }
    return StressCase(patient=patient, truth=truth, density=density, configuration=configuration)


def _scans_of(
    anatomy: Anatomy, density: np.ndarray, imaging: ImagingParams, key: PRNGKeyArray
) -> Patient:
    """Sharp-threshold masks and clipped noisy PET of a given density (inside the brain)."""
    brain = anatomy.brain_mask
    noise = np.asarray(jax.random.normal(key, density.shape), np.float32) * imaging.sigma
    pet = np.where(brain, np.clip(imaging.b * density + noise, 0.0, 1.0), 0.0)
    observations = Observations(
        grid=anatomy.grid,
        t1c=brain & (density > imaging.u_c_t1c),
        flair=brain & (density > imaging.u_c_flair),
        pet=pet.astype(np.float32),
    )
    return Patient(anatomy=anatomy, observations=observations, name="solver")


def _with_displaced_boundaries(patient: Patient, key: PRNGKeyArray) -> Patient:
    """Each segmentation moved by its own displacement field, sd 1–3 mm, correlation length
    5–20 mm (drawn), kept inside the brain; T1c kept inside FLAIR as raters draw them."""
    keys = jax.random.split(key, 4)
    sd_mm = float(jax.random.uniform(keys[0], minval=1.0, maxval=3.0))
    length_mm = float(jax.random.uniform(keys[1], minval=5.0, maxval=20.0))
    spacing = float(patient.grid.spacing_mm[0])
    brain = patient.anatomy.brain_mask
    obs = patient.observations
    flair = displaced_mask(obs.flair, spacing, keys[2], sd_mm, length_mm) & brain
    t1c = displaced_mask(obs.t1c, spacing, keys[3], sd_mm, length_mm) & flair
    return _with_observations(patient, t1c=t1c, flair=flair)


def _with_observations(patient: Patient, **images) -> Patient:
    obs = patient.observations
    values = {"t1c": obs.t1c, "flair": obs.flair, "pet": obs.pet, **images}
    return Patient(
        anatomy=patient.anatomy,
        observations=Observations(grid=obs.grid, **values),
        name=patient.name,
    )


__all__ = [
    "CROP_MM",
    "DATA_REFINEMENT",
    "STRESS_CONFIGURATIONS",
    "StressCase",
    "displaced_mask",
    "explicit_euler_fk",
    "smooth_field",
    "stress_case",
]
