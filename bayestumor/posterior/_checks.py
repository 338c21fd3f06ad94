"""Checks that say when a fit cannot explain the scans, and target volumes beside the evidence.

- `target_volumes`: {P(u > u*) ≥ p} for several p, each with its volume and the fraction of the
  visible FLAIR abnormality inside it (a target that leaves visible disease outside is never
  reported without that number).
- `predictive_checks`: per modality, how well the posterior-mean predicted image reproduces
  the observed one — Dice of {predicted probability ≥ 0.5} against a segmentation, mean and
  root-mean-square residual of PET.
- `parameters_at_prior_bounds`: parameters whose posterior piles up at an end of its prior
  range (the data push beyond what the prior allows: a misfit, or a prior too narrow).
"""

from __future__ import annotations

import math

import numpy as np

from bayestumor.config import LOG_UNIFORM, Priors, bounds, is_fixed

TARGET_PROBABILITIES = (0.1, 0.25, 0.5, 0.75, 0.9)
"""Probabilities p of the reported target volumes {P(u > u*) ≥ p}."""
FLAIR_INSIDE_TARGET_MIN = 0.95
"""Below this fraction of the visible FLAIR inside the CTV the report warns."""
DICE_MIN = 0.7
"""Below this Dice of a predicted against an observed segmentation the report warns."""
BOUND_EDGE = 0.02
"""Width of the outermost slice of a prior range (fraction of the range, in log for log-uniform
priors) that counts as "at the bound"."""
BOUND_MASS = 0.25
"""Posterior mass within `BOUND_EDGE` of a bound above which a parameter is flagged (a flat
posterior puts 2 % there)."""


def target_volumes(
    exceedance: np.ndarray,
    flair: np.ndarray | None,
    voxel_ml: float,
    probabilities: tuple[float, ...] = TARGET_PROBABILITIES,
) -> dict[str, dict[str, float | None]]:
    """Volume (ml) and fraction of the FLAIR inside {P(u > u*) ≥ p} for each p, keyed by
    ``f"{p:g}"``; the fraction is None without FLAIR voxels."""
    has_flair = flair is not None and bool(np.any(flair))
    table = {}
    for p in probabilities:
        target = exceedance >= p
        table[f"{p:g}"] = {
            "volume_ml": float(np.count_nonzero(target)) * voxel_ml,
            "flair_inside": (
                float(np.count_nonzero(target & flair)) / float(np.count_nonzero(flair))
                if has_flair
                else None
            ),
        }
    return table


def dice(a: np.ndarray, b: np.ndarray) -> float | None:
    """Dice coefficient of two masks (None when both are empty)."""
    total = int(np.count_nonzero(a)) + int(np.count_nonzero(b))
    return None if total == 0 else 2.0 * float(np.count_nonzero(a & b)) / total


def predictive_checks(
    predicted: dict[str, np.ndarray],
    observed: dict[str, np.ndarray | None],
    brain: np.ndarray,
) -> dict[str, dict[str, float | None]]:
    """Posterior-predictive checks per modality on the brain voxels of the ROI.

    Args:
        predicted: posterior mean of each predicted image by its map name
            (``t1c_probability``, ``flair_probability``, ``pet_expected``;
            `PosteriorMaps.predicted`).
        observed: the observed images by modality (``t1c``, ``flair``, ``pet``).
        brain: brain mask of the ROI.
    """
    checks = {}
    for name in ("t1c", "flair"):
        image, probability = observed.get(name), predicted.get(f"{name}_probability")
        if image is None or probability is None:
            continue
        checks[name] = {"dice": dice(brain & (probability >= 0.5), brain & np.asarray(image, bool))}
    pet, expected = observed.get("pet"), predicted.get("pet_expected")
    if pet is not None and expected is not None:
        residual = (np.asarray(pet, np.float64) - expected)[brain]
        checks["pet"] = {
            "mean_residual": float(residual.mean()),
            "rms_residual": float(math.sqrt(np.mean(np.square(residual)))),
        }
    return checks


def parameters_at_prior_bounds(posterior: dict[str, np.ndarray], priors: Priors) -> list[str]:
    """Names of free parameters with more than `BOUND_MASS` of their draws within `BOUND_EDGE`
    of a prior bound, each as ``"name (lower)"`` or ``"name (upper)"``. The seed's prior is a
    truncated normal on the ROI and is not checked."""
    flagged = []
    for name, values in posterior.items():
        spec = getattr(priors, name, None)
        if spec is None or is_fixed(spec):
            continue
        low, high = bounds(spec)
        x = np.asarray(values, np.float64).reshape(-1)
        if name in LOG_UNIFORM:
            x, low, high = np.log(x), math.log(low), math.log(high)
        edge = BOUND_EDGE * (high - low)
        if np.mean(x <= low + edge) > BOUND_MASS:
            flagged.append(f"{name} (lower)")
        if np.mean(x >= high - edge) > BOUND_MASS:
            flagged.append(f"{name} (upper)")
    return flagged


__all__ = [
    "BOUND_EDGE",
    "BOUND_MASS",
    "DICE_MIN",
    "FLAIR_INSIDE_TARGET_MIN",
    "TARGET_PROBABILITIES",
    "dice",
    "parameters_at_prior_bounds",
    "predictive_checks",
    "target_volumes",
]
