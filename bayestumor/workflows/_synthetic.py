"""Synthetic patients with known parameters, for the demo, tests, benchmarks and notebooks."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bayestumor._custom_types import PRNGKeyArray
from bayestumor.errors import SolverError
from bayestumor.forward import AbstractForwardModel, GrowthParams, PDEForward
from bayestumor.imaging import Anatomy, Observations, Patient
from bayestumor.model import DEFAULT_EPSILON, front_slope, observation_model


class ImagingParams(NamedTuple):
    """Imaging parameters of the observation model (`bayestumor.model._observation`), dimensionless.

    Attributes:
        u_c_t1c: T1c visibility threshold. u_c_flair: FLAIR visibility threshold.
        sigma_alpha: width of the visibility transition (density visibility).
        boundary_sd: sd of a contour's position, mm (boundary visibility).
        b: PET uptake per unit density. sigma: PET noise sd.
    """

    u_c_t1c: float = 0.7
    u_c_flair: float = 0.25
    sigma_alpha: float = 0.06
    boundary_sd: float = 1.0
    b: float = 0.85
    sigma: float = 0.05


def simulate_patient(
    anatomy: Anatomy,
    params: GrowthParams,
    imaging: ImagingParams,
    key: PRNGKeyArray,
    *,
    forward: AbstractForwardModel | None = None,
    noisy: bool = False,
    pet: bool = True,
    name: str = "synthetic",
    epsilon: float = DEFAULT_EPSILON,
    visibility: str = "density",
) -> Patient:
    """A patient whose scans come from the growth model with known parameters.

    The density u = F(params) is computed with `forward` (default: the PDE on `anatomy`). With
    ``noisy=False`` each image is its modality's `idealised` scan — segmentations are the
    thresholds T1c = u > u_c_t1c and FLAIR = u > u_c_flair (what a radiologist's contour looks
    like), PET is b·u + Normal(0, σ) noise clipped to [0, 1] (like a normalised scan): data the
    calibration model did not generate. With ``noisy=True`` every brain voxel is drawn from the
    model's own likelihood (`AbstractModality.sample`; needed for simulation-based
    calibration), then stored as a scan file holds it (`AbstractModality.stored`: PET clipped to
    [0, 1]). Outside the brain every segmentation is empty and PET is 0.

    Args:
        anatomy: tissue maps and grid.
        params: true growth parameters (scalars).
        imaging: true imaging parameters.
        key: PRNG key for the noise.
        forward: forward map on ``anatomy.grid`` (built and sized for `params` if None).
        noisy: sample segmentations from the likelihood instead of thresholding.
        pet: also simulate PET.
        name: patient name.
        epsilon: clipping of α (as in the model).
        visibility: the segmentations' visibility law for ``noisy=True``
            (`bayestumor.model.Segmentation.visibility`).
    """
    if forward is None:
        forward = PDEForward.from_anatomy(anatomy)
        forward = forward.with_max_steps(forward.stable_steps(params) + 1)
    density = jnp.asarray(forward.nan_on_failure()(params))
    if not bool(jnp.all(jnp.isfinite(density))):
        raise SolverError("the forward model returned non-finite densities for these parameters")
    brain = jnp.asarray(anatomy.brain_mask)
    names = ("t1c", "flair", "pet") if pet else ("t1c", "flair")
    modalities = observation_model(names, epsilon, visibility=visibility)
    keys = jax.random.split(key, len(modalities))
    truth = {name: jnp.asarray(value, density.dtype) for name, value in imaging._asdict().items()}
    reads_slope = noisy and any(m.reads_slope for m in modalities)
    slope = front_slope(density, anatomy.grid.spacing_mm) if reads_slope else None
    images = {}
    for modality, subkey in zip(modalities, keys, strict=True):
        if noisy:
            image = modality.stored(modality.sample(subkey, density, truth, slope))
        else:
            image = modality.idealised(subkey, density, truth)
        images[modality.name] = np.asarray(jnp.where(brain, image, 0).astype(image.dtype))
    observations = Observations(
        grid=anatomy.grid,
        t1c=images["t1c"].astype(bool),
        flair=images["flair"].astype(bool),
        pet=None if "pet" not in images else images["pet"].astype(np.float32),
    )
    return Patient(anatomy=anatomy, observations=observations, name=name)


DEMO_SEED_MNI_MM = (28.0, 12.0, 24.0)
"""Seed of the demo tumour: right frontal white matter in MNI152 space, mm."""
DEMO_TRUTH = {"mu_D": 5.0, "mu_rho": 2.5}
"""Scale-free truth of the demo: √(D_w T) = 5 mm, √(ρ T) = 2.5 (6.25 proliferation e-folds);
the front has then moved ≈ 2·μ_D·μ_ρ = 25 mm, a glioblastoma-sized lesion."""


def demo_patient(
    spacing_mm: float = 4.0, key: PRNGKeyArray | None = None, pet: bool = True
) -> tuple[Patient, dict[str, float]]:
    """A synthetic patient on the MNI152 anatomy (nilearn's template) with known parameters.

    The seed is the white-matter voxel (wm ≥ 0.5) nearest `DEMO_SEED_MNI_MM`; growth uses the
    scale-free `DEMO_TRUTH`; T1c and FLAIR are thresholds at the default `ImagingParams`
    (u_c 0.7 and 0.25) and PET is b·u plus Normal(0, σ) noise.

    Returns:
        The patient (on the `spacing_mm` MNI grid) and the true values by parameter name
        (``mu_D, mu_rho, seed_x, seed_y, seed_z`` and the imaging parameters but the
        contour widths, which sharp masks do not have).
    """
    from bayestumor.imaging import load_mni152

    key = jax.random.key(2024) if key is None else key
    anatomy = load_mni152(spacing_mm)
    white = np.argwhere(anatomy.wm >= 0.5)
    world = anatomy.grid.voxel_to_world(white)
    seed_mm = world[np.argmin(np.linalg.norm(world - np.array(DEMO_SEED_MNI_MM), axis=1))]
    params = GrowthParams.from_scale_free(
        jnp.float32(DEMO_TRUTH["mu_D"]), jnp.float32(DEMO_TRUTH["mu_rho"]), jnp.asarray(seed_mm)
    )
    imaging = ImagingParams()
    patient = simulate_patient(anatomy, params, imaging, key, pet=pet, name="demo-mni152")
    truth = {
        **DEMO_TRUTH,
        "seed_x": float(seed_mm[0]),
        "seed_y": float(seed_mm[1]),
        "seed_z": float(seed_mm[2]),
        # The masks are sharp thresholds: their contours have no width to be true of.
        **{k: v for k, v in imaging._asdict().items() if k not in ("sigma_alpha", "boundary_sd")},
    }
    return patient, truth


__all__ = ["DEMO_SEED_MNI_MM", "DEMO_TRUTH", "ImagingParams", "demo_patient", "simulate_patient"]
