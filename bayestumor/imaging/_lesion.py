"""The tissue of the lesion's voxels: as the maps give it, or white matter, or brain.

Patient tissue maps often label the lesion grey matter or no tissue at all (a segmentation of
a tumour-bearing brain has no class for tumour; GliomaSolver's sample case labels its necrotic
and enhancing voxels ≥ 0.9 grey matter), so the model's diffusivity D_w·(p_wm + p_gm/10) is
slowest, or zero, exactly where the tumour grew. `with_lesion_tissue` replaces the tissue inside
the lesion (T1c ∪ FLAIR) by one of `LESION_TISSUES`:

- ``"as-given"``: unchanged (the default; the maps are taken at their word).
- ``"white-matter"``: wm = 1, gm = 0, csf = 0. Glioblastoma grows and infiltrates mainly along
  white-matter tracts (Swanson et al. 2000; the white/grey diffusivity ratio of the model), and
  the tissue the tumour replaced is unknown: white-matter diffusivity is the common assumption.
- ``"brain"``: wm + gm = 1 in their given ratio, csf = 0 (white matter where wm + gm = 0):
  keeps the local white/grey composition but removes CSF and no-tissue holes from the lesion.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from bayestumor.config import LESION_TISSUES
from bayestumor.errors import InputError
from bayestumor.imaging._patient import Patient

LESION_OUTSIDE_WHITE_MATTER_WARNING = 0.5
"""`with_lesion_tissue` warns when more than this fraction of the lesion is not white matter."""


def lesion_tissue_fractions(patient: Patient) -> dict[str, float]:
    """Probability-weighted fractions of the lesion (T1c ∪ FLAIR) in each tissue.

    Keys ``wm``, ``gm``, ``csf`` and ``none`` (1 − wm − gm − csf), summing to 1; where a
    voxel's probabilities add up to more than 1 they are scaled to 1. Empty dict for an empty
    lesion.
    """
    lesion = patient.observations.lesion_mask
    if not lesion.any():
        return {}
    anatomy = patient.anatomy
    tissues = np.stack([getattr(anatomy, name)[lesion] for name in ("wm", "gm", "csf")])
    tissues = np.clip(tissues.astype(np.float64), 0.0, None)
    tissues /= np.maximum(tissues.sum(axis=0), 1.0)
    fractions = dict(zip(("wm", "gm", "csf"), tissues.mean(axis=1).tolist(), strict=True))
    fractions["none"] = max(0.0, 1.0 - sum(fractions.values()))
    return fractions


def with_lesion_tissue(patient: Patient, choice: str) -> Patient:
    """`patient` with the tissue inside its lesion (T1c ∪ FLAIR) set by `choice`.

    Warns (`UserWarning`, also recorded in `Patient.notes`) when more than
    `LESION_OUTSIDE_WHITE_MATTER_WARNING` (50 %) of the lesion, as given, is grey matter, CSF or
    no tissue, unless `choice` is ``"white-matter"`` (which replaces it); a change of tissue is
    recorded in the notes too, with the fractions as given.

    Args:
        patient: the patient as loaded (any grid).
        choice: one of `LESION_TISSUES`: ``"as-given"``, ``"white-matter"``, ``"brain"``.

    Raises:
        InputError: unknown `choice`.
    """
    if choice not in LESION_TISSUES:
        raise InputError(f"unknown lesion tissue {choice!r}; choose from {LESION_TISSUES}")
    fractions = lesion_tissue_fractions(patient)
    if not fractions:
        return patient
    as_given = (
        f"{fractions['wm']:.0%} white matter, {fractions['gm']:.0%} grey matter, "
        f"{fractions['csf']:.0%} CSF, {fractions['none']:.0%} no tissue"
    )
    notes = list(patient.notes)
    outside = 1.0 - fractions["wm"]
    if outside > LESION_OUTSIDE_WHITE_MATTER_WARNING and choice != "white-matter":
        message = (
            f"{outside:.0%} of the lesion (T1c ∪ FLAIR) is not white matter in the tissue maps "
            f"({as_given}), so the model's diffusion is slowest where the tumour is; consider "
            "--lesion-tissue white-matter (CalibrationConfig.lesion_tissue)"
        )
        warnings.warn(message, UserWarning, stacklevel=2)
        notes.append(message)
    if choice == "as-given":
        return dataclasses.replace(patient, notes=tuple(notes))

    anatomy = patient.anatomy
    lesion = patient.observations.lesion_mask
    wm, gm, csf = (np.array(getattr(anatomy, name)) for name in ("wm", "gm", "csf"))
    if choice == "white-matter":
        wm[lesion], gm[lesion] = 1.0, 0.0
    else:
        brain = wm[lesion] + gm[lesion]
        has_brain = brain > 0
        safe = np.where(has_brain, brain, 1.0)
        wm[lesion], gm[lesion] = (
            np.where(has_brain, wm[lesion] / safe, 1.0),
            np.where(has_brain, gm[lesion] / safe, 0.0),
        )
    csf[lesion] = 0.0
    notes.append(
        f"lesion tissue {choice}: the {int(lesion.sum())} lesion voxels (T1c ∪ FLAIR) set to "
        + ("white matter" if choice == "white-matter" else "brain (wm + gm = 1, given ratio)")
        + f"; as given they were {as_given}"
    )
    return dataclasses.replace(
        patient,
        anatomy=dataclasses.replace(anatomy, wm=wm, gm=gm, csf=csf),
        notes=tuple(notes),
    )
