"""Plan evaluation (PredictGBM's definitions and the coverage-volume curves) on small volumes.

Independent truths: lattice-point counts of balls and shells computed here by brute force from
the Euclidean norm (never through scipy's distance transform), the analytic volume of a ball,
and selections worked out by hand for tiny volumes.
"""

import math

import numpy as np
import pytest

from bayestumor.errors import InputError
from bayestumor.imaging import Grid
from bayestumor.posterior import (
    BRATS2021_LABELS,
    PREDICTGBM_RECURRENCE_LABELS,
    distance_to_mask_mm,
    evaluate_plans,
    less_tissue,
    margin_coverage_curve,
    missed_voxels,
    plan_ranking,
    recurrence_coverage,
    standard_plan,
    top_k_coverage_curve,
    top_k_plan,
    tumour_masks,
)

N = 61  # a 61³ 1 mm grid, centre voxel (30, 30, 30): room for a ball of radius 30 mm
CENTRE = N // 2
ONE_MM = (1.0, 1.0, 1.0)


def squared_radius(shape=(N, N, N), centre=(CENTRE, CENTRE, CENTRE), spacing=ONE_MM):
    """|x − centre|² in mm² at every voxel centre, from the coordinates themselves."""
    axes = np.indices(shape).astype(np.float64)
    return sum(((axes[a] - centre[a]) * spacing[a]) ** 2 for a in range(3))


def lattice_ball(radius_mm, **kwargs):
    return squared_radius(**kwargs) <= radius_mm**2


def grid_with(spacing, shape=(N, N, N)):
    return Grid(shape, np.diag([*spacing, 1.0]))


def ball_volume(radius):
    return 4.0 / 3.0 * math.pi * radius**3


# ------------------------------------------------------------------------------- standard


def test_standard_plan_of_a_point_is_the_lattice_ball_of_15_mm():
    """A one-voxel core: the plan is exactly the voxels within 15 mm of it, whose number is
    within 0.1 % of 4/3·π·15³ (lattice-point count of a 15 mm ball: 14,147 vs 14,137)."""
    core = lattice_ball(0.0)
    brain = np.ones_like(core)
    plan = standard_plan(core, brain, ONE_MM, 15.0)
    np.testing.assert_array_equal(plan, lattice_ball(15.0))
    assert abs(plan.sum() / ball_volume(15.0) - 1) < 1e-3


@pytest.mark.parametrize("r_mm", [3, 5, 8])
def test_standard_plan_of_a_sphere_is_a_ball_of_radius_r_plus_15(r_mm):
    """Core = lattice ball of radius r; plan = core dilated by 15 mm ≈ ball of radius R = r + 15.

    Exact bounds (proof): every plan voxel is within 15 mm of a core voxel, itself within r of
    the centre, so plan ⊆ lattice ball(R). Conversely for |x| ≤ R − √3 pick p on the segment
    0→x with |x − p| = 15 − √3/2; the lattice point c nearest p is within √3/2 of p, so
    |c| ≤ r (c is core) and |x − c| ≤ 15: plan ⊇ lattice ball(R − √3).

    Analytic volume: the discrete core's outermost voxel centres lie up to half a voxel inside
    radius r in directions off the axes, which moves the plan's boundary in by up to 0.5 mm, so
    the count lies between 4/3·π·(R − 0.5)³ and 4/3·π·R³ (+1 % for the lattice-point counting
    error at these radii, measured ≤ 0.3 %). Measured: −2.1 %, −2.3 %, −2.9 % for r = 3, 5, 8;
    the bound allows −8.1 %, −7.3 %, −6.4 %."""
    core = lattice_ball(float(r_mm))
    brain = np.ones_like(core)
    plan = standard_plan(core, brain, ONE_MM, 15.0)
    big_r = r_mm + 15.0
    assert (plan <= lattice_ball(big_r)).all()
    assert (plan >= lattice_ball(big_r - math.sqrt(3.0))).all()
    count = int(plan.sum())
    assert ball_volume(big_r - 0.5) <= count <= 1.01 * ball_volume(big_r)


def test_standard_plan_stays_in_the_brain_mask():
    """A half-space brain (x ≤ centre): the plan is the 15 mm lattice ball's half, exactly."""
    core = lattice_ball(0.0)
    brain = np.zeros_like(core)
    brain[: CENTRE + 1] = True
    plan = standard_plan(core, brain, ONE_MM, 15.0)
    np.testing.assert_array_equal(plan, lattice_ball(15.0) & brain)
    assert not plan[CENTRE + 1 :].any()


def test_anisotropic_spacing_is_measured_in_mm():
    """1 × 1 × 3 mm voxels: the plan of a one-voxel core is the ellipsoid of voxels with
    i² + j² + (3k)² ≤ 15² — 5 slices either side along k, not 15 — and has ≈ 4/3·π·15³/3 voxels
    (the ball's volume in mm³ over the 3 mm³ voxel); a distance in voxels would triple it."""
    spacing = (1.0, 1.0, 3.0)
    shape = (N, N, 21)
    centre = (CENTRE, CENTRE, 10)
    core = squared_radius(shape, centre) == 0
    brain = np.ones_like(core)
    plan = standard_plan(core, brain, spacing, 15.0)
    expected = squared_radius(shape, centre, spacing) <= 15.0**2
    np.testing.assert_array_equal(plan, expected)
    occupied_slices = np.flatnonzero(plan.any(axis=(0, 1)))
    assert occupied_slices.tolist() == list(range(5, 16))
    # Analytic: 11 slices of discs of radius √(15² − (3k)²), Σ π(225 − 9k²) = 1485π voxels,
    # within 1.5 % (lattice points in discs of radius ≤ 15); the ellipsoid, 1500π, within 3 %
    # (the slice sum of a quadratic profile is 1 % below its integral).
    assert abs(plan.sum() / (1485 * math.pi) - 1) < 0.015
    assert abs(plan.sum() / (ball_volume(15.0) / 3.0) - 1) < 0.03
    grid = grid_with(spacing, shape)
    assert grid.voxel_volume_ml == pytest.approx(0.003)
    np.testing.assert_allclose(distance_to_mask_mm(core, grid.spacing_mm)[CENTRE, CENTRE, 12], 6.0)


def test_empty_core_gives_an_empty_plan():
    core = np.zeros((5, 5, 5), dtype=bool)
    assert not standard_plan(core, ~core, ONE_MM, 15.0).any()
    assert np.isinf(distance_to_mask_mm(core, ONE_MM)).all()


# --------------------------------------------------------------------------------- labels


def test_label_conventions_give_core_enhancing_and_tumour():
    labels = np.array([0, 1, 2, 3, 4], dtype=np.float32).reshape(5, 1, 1)
    gliodil = {"necrotic": (1,), "oedema": (3,), "enhancing": (4,)}
    masks = tumour_masks(labels, gliodil | {"other": (2,)})
    assert masks.core.ravel().tolist() == [False, True, False, False, True]
    assert masks.enhancing.ravel().tolist() == [False, False, False, False, True]
    assert masks.tumour.ravel().tolist() == [False, True, False, True, True]
    # PredictGBM's recurrence: 3 enhancing, 4 resection cavity (no tumour).
    masks = tumour_masks(labels, PREDICTGBM_RECURRENCE_LABELS)
    assert masks.enhancing.ravel().tolist() == [False, False, False, True, False]
    assert masks.tumour.ravel().tolist() == [False, True, True, True, False]


def test_labels_outside_the_convention_are_refused_by_name():
    labels = np.array([0, 1, 2, 3], dtype=np.float32).reshape(4, 1, 1)
    with pytest.raises(
        InputError, match=r"unknown labels \[3\].*necrotic 1, oedema 2, enhancing 4"
    ):
        tumour_masks(labels, BRATS2021_LABELS)
    with pytest.raises(InputError, match="non-integer"):
        tumour_masks(labels + 0.5, BRATS2021_LABELS)
    with pytest.raises(InputError, match="two roles"):
        tumour_masks(labels, {"necrotic": (1,), "enhancing": (1,)})
    with pytest.raises(InputError, match="unknown label roles"):
        tumour_masks(labels, {"core": (1,)})


# ------------------------------------------------------------------------------- coverage


def test_coverage_of_shells_inside_and_across_the_plan():
    """One-voxel core, plan = lattice ball(15). A shell 10 < |x| ≤ 14 lies inside: coverage 1,
    nothing missed. A shell 10 < |x| ≤ 20 is covered by its part within 15 mm:
    (N(15) − N(10)) / (N(20) − N(10)) by lattice counts, ≈ (15³ − 10³)/(20³ − 10³) = 0.339
    analytically (within 1 %)."""
    r2 = squared_radius()
    plan = standard_plan(r2 == 0, np.ones((N, N, N), bool), ONE_MM, 15.0)
    inside = (r2 > 10**2) & (r2 <= 14**2)
    assert recurrence_coverage(inside, plan) == 1.0
    assert missed_voxels(inside, plan) == 0
    across = (r2 > 10**2) & (r2 <= 20**2)
    n10, n15, n20 = ((r2 <= r**2).sum() for r in (10, 15, 20))
    assert recurrence_coverage(across, plan) == pytest.approx((n15 - n10) / (n20 - n10), abs=0)
    assert missed_voxels(across, plan) == n20 - n15
    analytic = (15**3 - 10**3) / (20**3 - 10**3)
    assert recurrence_coverage(across, plan) == pytest.approx(analytic, rel=0.01)
    assert np.isnan(recurrence_coverage(np.zeros_like(plan), plan))


def test_coverage_of_an_offset_ball_matches_the_lens_volume():
    """Recurrence = ball of radius 6 mm centred 15 mm from a one-voxel core: the covered part
    is the lens where it meets the plan's 15 mm ball. Lattice count exact; the analytic lens
    volume π(R + r − d)²(d² + 2dr − 3r² + 2dR + 6rR − 3R²)/(12d) over 4/3·π·r³ within 5 %
    (surface voxels of a 6 mm ball are ~40 % of it, so lattice counts deviate by a few %)."""
    r2 = squared_radius()
    plan = standard_plan(r2 == 0, np.ones((N, N, N), bool), ONE_MM, 15.0)
    big_r, r, d = 15.0, 6.0, 15.0
    recurrence = squared_radius(centre=(CENTRE + 15, CENTRE, CENTRE)) <= r**2
    expected = (recurrence & (r2 <= big_r**2)).sum() / recurrence.sum()
    assert recurrence_coverage(recurrence, plan) == expected
    lens = (
        math.pi
        * (big_r + r - d) ** 2
        * (d**2 + 2 * d * r - 3 * r**2 + 2 * d * big_r + 6 * r * big_r - 3 * big_r**2)
        / (12 * d)
    )
    assert recurrence_coverage(recurrence, plan) == pytest.approx(lens / ball_volume(r), rel=0.05)


# ---------------------------------------------------------------------------------- top-k


def test_top_k_with_ties_is_deterministic_and_documented():
    """Prediction [0.9, 0.5, 0.5, 0.5, 0.1, 0.5] (a row of six voxels), k = 3: 0.9, then two of
    the four 0.5s — by default the lowest flat indices (1, 2); with a tie-break key
    (e.g. distance to the core) the smallest keys (5: key 0, then 3: key 1)."""
    prediction = np.array([0.9, 0.5, 0.5, 0.5, 0.1, 0.5], np.float32).reshape(6, 1, 1)
    brain = np.ones((6, 1, 1), dtype=bool)
    assert np.flatnonzero(top_k_plan(prediction, brain, 3)).tolist() == [0, 1, 2]
    key = np.array([9.0, 3.0, 2.0, 1.0, 0.0, 0.0]).reshape(6, 1, 1)
    assert np.flatnonzero(top_k_plan(prediction, brain, 3, tie_break=key)).tolist() == [0, 3, 5]
    assert plan_ranking(prediction, brain, key).tolist() == [0, 5, 3, 2, 1, 4]
    # Outside the brain nothing is taken, however high the prediction.
    brain[0] = False
    assert np.flatnonzero(top_k_plan(prediction, brain, 2)).tolist() == [1, 2]
    assert top_k_plan(prediction, brain, 0).sum() == 0
    with pytest.raises(ValueError, match="k must be"):
        top_k_plan(prediction, brain, 6)


def test_a_constant_prediction_reproduces_the_standard_plan():
    """Ties are broken by the distance to the core, so a prediction that tells nothing apart
    hands out exactly the standard plan (the voxels within 15 mm, ties at the cut included)."""
    r2 = squared_radius()
    preop = np.where(r2 <= 4**2, 4.0, 0.0).astype(np.float32)
    brain = r2 <= 28**2
    recurrence = np.where(r2 <= 10**2, 4.0, 0.0).astype(np.float32)
    result = evaluate_plans(
        np.full((N, N, N), 0.3, np.float32), preop, recurrence, brain, grid_with(ONE_MM)
    )
    np.testing.assert_array_equal(result.model_plan, result.standard_plan)
    assert result.metrics["plans_overlap_dice"] == 1.0
    assert result.metrics["model_plan_tie_broken_voxels"] == result.metrics["plan_voxels"]


# ----------------------------------------------------------------------------------- curves


def test_top_k_curve_reaches_full_coverage_at_the_recurrence_volume():
    """Prediction = −distance from a point p; recurrence = lattice ball of 3 mm around p: the
    first N(3) = 123 voxels ranked are the recurrence, so full coverage at 0.123 ml, and the
    plan of k voxels covers min(k, ...)/123 in between."""
    r2 = squared_radius(centre=(20, 25, 30))
    prediction = -np.sqrt(r2).astype(np.float32)
    recurrence = r2 <= 3**2
    n_rec = int(recurrence.sum())
    assert n_rec == 123
    brain = np.ones_like(recurrence)
    curve = top_k_coverage_curve(prediction, recurrence, brain, 0.001)
    assert curve.volume_for(1.0) == pytest.approx(n_rec * 0.001)
    assert curve.coverage_at(n_rec * 0.001) == 1.0
    assert curve.coverage_at(10 * 0.001) == pytest.approx(10 / n_rec)
    assert curve.coverage_at(0.0) == 0.0
    # Every point of the curve is the coverage of the top-k plan of that size.
    for k in (1, 7, 50, 122):
        plan = top_k_plan(prediction, brain, k)
        assert curve.coverage_at(k * 0.001) == recurrence_coverage(recurrence, plan)


def test_margin_curve_reaches_full_coverage_at_the_farthest_recurrence_voxel():
    """One-voxel core; recurrence voxels at 7 mm and 10 mm along two axes: coverage 1/2 from
    margin 7 mm (plan N(7) voxels) and 1 from 10 mm (N(10) voxels); the 15 mm plan covers all."""
    r2 = squared_radius()
    core = r2 == 0
    recurrence = np.zeros_like(core)
    recurrence[CENTRE + 7, CENTRE, CENTRE] = True
    recurrence[CENTRE, CENTRE - 10, CENTRE] = True
    brain = np.ones_like(core)
    curve = margin_coverage_curve(distance_to_mask_mm(core, ONE_MM), recurrence, brain, 0.001)
    np.testing.assert_allclose(curve.margin_mm, [7.0, 10.0])
    np.testing.assert_allclose(curve.coverage, [0.5, 1.0])
    np.testing.assert_allclose(curve.volume_ml, [(r2 <= 49).sum() * 1e-3, (r2 <= 100).sum() * 1e-3])
    assert curve.margin_for(1.0) == 10.0
    plan = standard_plan(core, brain, ONE_MM, 10.0)
    assert curve.volume_for(1.0) == pytest.approx(plan.sum() * 1e-3)


def test_recurrence_outside_the_brain_is_never_fully_covered():
    r2 = squared_radius()
    core = r2 == 0
    brain = r2 <= 20**2
    recurrence = (r2 > 18**2) & (r2 <= 22**2)
    curve = margin_coverage_curve(distance_to_mask_mm(core, ONE_MM), recurrence, brain, 0.001)
    inside = (recurrence & brain).sum() / recurrence.sum()
    assert curve.coverage[-1] == pytest.approx(inside)
    assert np.isnan(curve.volume_for(1.0)) and np.isnan(curve.margin_for(1.0))


# ------------------------------------------------------------------------------ evaluation


def test_evaluate_plans_on_a_prediction_that_knows_the_recurrence_direction():
    """Core: ball of 4 mm at the centre; recurrence (enhancing, label 4) a ball of 5 mm centred
    17 mm away along x, oedema (label 2) a ball of 3 mm on the other side 6 mm away. The
    prediction decreases with the distance from the recurrence's centre, so the model plan (same
    volume as the 15 mm plan) covers the enhancing recurrence fully while the standard plan does
    not; the model family needs less tissue for full coverage. Numbers by brute-force counts."""
    r2 = squared_radius()
    preop = np.where(r2 <= 4**2, 4.0, 0.0).astype(np.float32)
    far = squared_radius(centre=(CENTRE + 17, CENTRE, CENTRE))
    near = squared_radius(centre=(CENTRE - 6, CENTRE, CENTRE))
    recurrence = np.zeros((N, N, N), np.float32)
    recurrence[near <= 3**2] = 2.0
    recurrence[far <= 5**2] = 4.0
    brain = r2 <= 29**2
    prediction = np.exp(-np.sqrt(far) / 10.0).astype(np.float32)
    result = evaluate_plans(prediction, preop, recurrence, brain, grid_with(ONE_MM))
    m = result.metrics

    standard = standard_plan(r2 <= 16, brain, ONE_MM, 15.0)
    enhancing = far <= 25
    everything = enhancing | (near <= 9)
    np.testing.assert_array_equal(result.standard_plan, standard)
    assert m["plan_voxels"] == standard.sum() == result.model_plan.sum()
    assert m["plan_ml"] == pytest.approx(standard.sum() * 1e-3)
    assert m["recurrence_coverage_standard"] == recurrence_coverage(enhancing, standard)
    assert 0.0 < m["recurrence_coverage_standard"] < 1.0
    assert m["missed_voxels_standard"] == missed_voxels(enhancing, standard)
    assert m["missed_ml_standard"] == pytest.approx(m["missed_voxels_standard"] * 1e-3)
    assert m["recurrence_coverage_model"] == 1.0 and m["missed_voxels_model"] == 0
    assert m["recurrence_coverage_standard_all"] == recurrence_coverage(everything, standard)
    assert m["recurrence_ml"] == pytest.approx(enhancing.sum() * 1e-3)
    assert m["recurrence_ml_all"] == pytest.approx(everything.sum() * 1e-3)
    assert m["recurrence_outside_brain_voxels"] == 0
    # Full coverage: the standard family needs the margin of the farthest enhancing voxel.
    farthest_mm = distance_to_mask_mm(r2 <= 16, ONE_MM)[enhancing].max()
    assert m["full_coverage_margin_mm"] == farthest_mm
    assert m["full_coverage_ml_model"] < m["full_coverage_ml_standard"]
    assert m["less_tissue_for_full_coverage"] == "model" == less_tissue(m)
    # The curves agree with the plans at the plan volume.
    assert result.curves["standard"].coverage_at(m["plan_ml"]) == pytest.approx(
        m["recurrence_coverage_standard"]
    )
    assert result.curves["model_all"].coverage_at(m["plan_ml"]) == pytest.approx(
        m["recurrence_coverage_model_all"]
    )


def test_evaluate_plans_refuses_what_cannot_be_scored():
    r2 = squared_radius(shape=(9, 9, 9), centre=(4, 4, 4))
    oedema_only = np.where(r2 <= 4, 2.0, 0.0).astype(np.float32)
    brain = np.ones((9, 9, 9), dtype=bool)
    grid = grid_with(ONE_MM, (9, 9, 9))
    with pytest.raises(InputError, match="no tumour core"):
        evaluate_plans(np.zeros((9, 9, 9), np.float32), oedema_only, oedema_only, brain, grid)
    with pytest.raises(InputError, match="brain mask is empty"):
        evaluate_plans(np.zeros((9, 9, 9), np.float32), oedema_only, oedema_only, ~brain, grid)
    sheared = Grid((9, 9, 9), np.array([[1, 0.5, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]))
    with pytest.raises(InputError, match="not orthogonal"):
        evaluate_plans(np.zeros((9, 9, 9), np.float32), oedema_only, oedema_only, brain, sheared)
