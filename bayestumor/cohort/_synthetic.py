"""A small synthetic cohort on disk, with known parameters: for the notebook, benchmark and tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

_SEEDS_MM = np.array(
    [[-22.0, 5.0, 5.0], [22.0, -8.0, 0.0], [20.0, 10.0, 8.0], [-20.0, -10.0, -4.0]]
)
"""Seed positions in the white matter of the 32³ × 4 mm phantom, cycled through the patients."""


def write_synthetic_cohort(
    cohort_dir: str | Path,
    n_patients: int,
    *,
    shape: tuple[int, int, int] = (32, 32, 32),
    spacing_mm: float = 4.0,
    seed: int = 0,
) -> pd.DataFrame:
    """Simulate `n_patients` tumours on the phantom brain and write them as patient directories.

    Each patient ``patient-NNN`` has the phantom's ``wm/gm/csf.nii.gz`` and thresholded
    ``t1c/flair.nii.gz`` plus ``pet.nii.gz`` from `bayestumor.workflows.simulate_patient`, with
    D_w log-uniform in [0.02, 0.06] mm²/day, ρ log-uniform in [0.01, 0.025] /day, T = 365 days
    and the default imaging parameters.

    Args:
        cohort_dir: directory to create the patient directories in.
        n_patients: number of patients.
        shape, spacing_mm: phantom grid (voxels per axis; isotropic voxel size in mm).
        seed: seed of the parameter draws.

    Returns:
        The true parameters: columns patient, D_w, rho, T, seed_x, seed_y, seed_z (mm).
    """
    import jax

    from bayestumor.forward import GrowthParams
    from bayestumor.imaging import make_phantom, save_patient
    from bayestumor.workflows import ImagingParams, simulate_patient

    cohort_dir = Path(cohort_dir)
    anatomy = make_phantom(shape, spacing_mm)
    rng = np.random.default_rng(seed)
    truths = []
    for index in range(n_patients):
        seed_mm = _SEEDS_MM[index % len(_SEEDS_MM)] * (shape[0] * spacing_mm / 128.0)
        truth = {
            "patient": f"patient-{index + 1:03d}",
            "D_w": float(np.exp(rng.uniform(np.log(0.02), np.log(0.06)))),
            "rho": float(np.exp(rng.uniform(np.log(0.01), np.log(0.025)))),
            "T": 365.0,
        }
        params = GrowthParams(D_w=truth["D_w"], rho=truth["rho"], T=truth["T"], seed_mm=seed_mm)
        patient = simulate_patient(anatomy, params, ImagingParams(), jax.random.key(seed + index))
        save_patient(patient, cohort_dir / truth["patient"])
        truths.append(
            truth | dict(zip(("seed_x", "seed_y", "seed_z"), seed_mm.tolist(), strict=True))
        )
    return pd.DataFrame(truths)
