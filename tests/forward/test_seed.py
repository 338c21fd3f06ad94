"""The initial condition's shapes, widths and amplitudes against closed forms and conservation.

Independent truths: the Gaussian's formula and its integral (2π)^{3/2} σ³ A; TumorGrowthToolkit's
own seed formula (M/(4πDt)^{3/2} exp(−r²/4Dt), cut at 0.1); mass conservation of pure diffusion
with zero-flux boundaries; moments summed over a fine grid; PDE solves from different seeds.
"""

import json
import math
from types import SimpleNamespace

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bayestumor.cli import main
from bayestumor.forward import (
    HEAT_KERNEL_THRESHOLD,
    SEED_SHAPES,
    TUMOR_GROWTH_TOOLKIT_SEED,
    GrowthParams,
    PDEForward,
    referenced_growth,
    seed_density,
    seed_moments,
)
from bayestumor.imaging import Grid, Observations, Patient, load_nifti, make_phantom, save_nifti


def gaussian_by_hand(shape, spacing_mm, centre_voxel, sigma_mm, amplitude):
    """amplitude · exp(−|x − c|² / 2σ²) over all voxel centres, in NumPy."""
    index = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    offset_mm = (index - np.asarray(centre_voxel)) * np.asarray(spacing_mm)
    return amplitude * np.exp(-0.5 * np.sum(offset_mm**2, axis=-1) / sigma_mm**2)


def test_gaussian_matches_closed_form(x64):
    """Anisotropic voxels, an off-grid centre: the separable product equals the 3-D formula."""
    shape, spacing = (9, 11, 7), (1.0, 1.5, 2.0)
    centre = jnp.array([4.3, 5.1, 2.7])
    seed = seed_density(centre, shape, spacing, sigma_mm=3.0, amplitude=0.7)
    expected = gaussian_by_hand(shape, spacing, centre, 3.0, 0.7)
    np.testing.assert_allclose(np.asarray(seed), expected, rtol=1e-12, atol=1e-15)


def test_amplitude_scales_the_gaussian(x64):
    centre = jnp.array([5.2, 4.9, 5.5])
    one = seed_density(centre, (11, 11, 11), (1.0, 1.0, 1.0), sigma_mm=2.5, amplitude=1.0)
    half = seed_density(centre, (11, 11, 11), (1.0, 1.0, 1.0), sigma_mm=2.5, amplitude=0.5)
    np.testing.assert_allclose(np.asarray(half), 0.5 * np.asarray(one), rtol=1e-14)


@pytest.mark.parametrize("amplitude", [1.0, 0.5])
def test_heat_kernel_is_the_gaussian_cut_at_the_threshold(x64, amplitude):
    """Zero where amplitude · kernel ≤ 0.1, the kernel itself above: both sets non-empty."""
    shape, spacing = (21, 21, 21), (1.0, 1.0, 1.0)
    centre = jnp.array([10.2, 9.6, 10.4])
    cut = np.asarray(
        seed_density(
            centre, shape, spacing, sigma_mm=3.0, amplitude=amplitude, seed_shape="heat-kernel"
        )
    )
    kernel = gaussian_by_hand(shape, spacing, centre, 3.0, amplitude)
    above = kernel > HEAT_KERNEL_THRESHOLD
    assert above.any() and (~above & (kernel > 1e-6)).any()
    np.testing.assert_allclose(cut[above], kernel[above], rtol=1e-12)
    assert np.all(cut[~above] == 0.0)


def test_tumor_growth_toolkit_seed_matches_its_formula(x64):
    """`TUMOR_GROWTH_TOOLKIT_SEED` reproduces TumorGrowthToolkit's FK ``gauss_sol3d`` at 1 mm
    (M = 250, Dt = 5, init_scale = 1): M/(4πDt)^{3/2} exp(−r²/4Dt) where > 0.1, else 0."""
    shape, spacing = (17, 17, 17), (1.0, 1.0, 1.0)
    centre = np.array([8.0, 8.0, 8.0])
    ours = seed_density(jnp.asarray(centre), shape, spacing, **_sigma_amplitude_shape())
    index = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    r2 = np.sum((index - centre) ** 2, axis=-1)
    theirs = 250.0 / (4 * np.pi * 5.0) ** 1.5 * np.exp(-r2 / (4 * 5.0))
    theirs = np.where(theirs > 0.1, theirs, 0.0)
    np.testing.assert_allclose(np.asarray(ours), theirs, rtol=1e-12, atol=1e-15)
    # Its support: the voxels within the cut radius √(20 ln(0.502/0.1)) ≈ 5.68 mm.
    assert np.count_nonzero(theirs) == np.count_nonzero(r2 <= 20 * math.log(0.50198 / 0.1))


def _sigma_amplitude_shape():
    options = dict(TUMOR_GROWTH_TOOLKIT_SEED)
    return {
        "sigma_mm": options["seed_sigma_mm"],
        "amplitude": options["seed_amplitude"],
        "seed_shape": options["seed_shape"],
    }


@pytest.mark.parametrize("spacing_mm", [0.5, 2.0])
def test_gaussian_mass_is_its_integral(x64, spacing_mm):
    """Σ u · h³ = (2π)^{3/2} σ³ A to 1e-6 relative.

    Why so tight: by Poisson summation the midpoint sum of a Gaussian on an infinite grid differs
    from the integral by ≈ 6·exp(−2π²σ²/h²) relative (< 1e-7 for h ≤ σ), and a box of ±6σ
    truncates ≈ 3·erfc(6/√2) ≈ 6e-9 of the mass.
    """
    sigma, amplitude = 2.0, 0.8
    n = 2 * round(6 * sigma / spacing_mm) + 1
    centre = jnp.full(3, (n - 1) / 2 + 0.3)  # off the voxel centres
    seed = seed_density(centre, (n, n, n), (spacing_mm,) * 3, sigma_mm=sigma, amplitude=amplitude)
    mass = float(jnp.sum(seed)) * spacing_mm**3
    expected = (2 * math.pi) ** 1.5 * sigma**3 * amplitude
    assert mass == pytest.approx(expected, rel=1e-6)


def _phantom_forward(seed_shape: str) -> PDEForward:
    anatomy = make_phantom((16, 16, 16), 4.0)
    return PDEForward.from_anatomy(anatomy, seed_shape=seed_shape, seed_sigma_mm=5.0)


@pytest.mark.parametrize(
    ("seed_shape", "sigma_mm", "amplitude"),
    [("gaussian", 3.0, 0.7), ("heat-kernel", math.sqrt(10.0), 0.502), ("heat-kernel", 2.5, 0.9)],
)
def test_seed_moments_are_the_sums_over_a_fine_grid(x64, seed_shape, sigma_mm, amplitude):
    """Mass and rms radius per axis in closed form (χ² distribution functions for the cut
    kernel) against the seed summed on a 0.25 mm grid: within 0.5 % (the grid's
    discretisation of the cut's edge)."""
    h, n = 0.25, 121
    centre = jnp.full(3, (n - 1) / 2)
    seed = np.asarray(
        seed_density(
            centre,
            (n,) * 3,
            (h,) * 3,
            sigma_mm=sigma_mm,
            amplitude=amplitude,
            seed_shape=seed_shape,
        )
    )
    r2 = np.sum(np.square((np.indices((n,) * 3) - (n - 1) / 2) * h), axis=0)
    mass = seed.sum() * h**3
    width = math.sqrt((seed * r2).sum() * h**3 / (3 * mass))
    closed_mass, closed_width = seed_moments(sigma_mm, amplitude, seed_shape)
    assert float(closed_mass) == pytest.approx(mass, rel=5e-3)
    assert float(closed_width) == pytest.approx(width, rel=5e-3)


def test_referenced_growth_is_the_identity_for_the_reference_seed_and_inverts_by_hand(x64):
    with pytest.raises(ValueError, match="unknown seed shape 'disc'"):
        seed_moments(4.0, 1.0, "disc")
    mu_D, mu_rho = referenced_growth(3.5, 2.1, 4.0, 1.0)
    assert (float(mu_D), float(mu_rho)) == pytest.approx((3.5, 2.1), rel=1e-12)
    # Half the peak: ln 2 fewer e-folds of the reference; twice the variance: σ²/2 more
    # diffusion length squared.
    mu_D, mu_rho = referenced_growth(3.5, 2.1, 4.0 * math.sqrt(2.0), 0.5 / 2**1.5)
    assert float(mu_rho) ** 2 == pytest.approx(2.1**2 - math.log(2.0), rel=1e-12)
    assert float(mu_D) ** 2 == pytest.approx(3.5**2 + 8.0, rel=1e-12)


@pytest.mark.parametrize(("sigma_mm", "amplitude"), [(3.0, 0.5), (2.5, 0.3)])
def test_seeds_with_equal_referenced_growth_grow_alike(sigma_mm, amplitude):
    """Uniform white matter, 2 mm: a tumour grown from a small seed with the raw μ_D, μ_ρ whose
    referenced values equal the reference tumour's matches it (FLAIR-like region u > 0.25: Dice
    ≥ 0.95, measured 0.99–1.00), while the same raw μ_D, μ_ρ from that seed do not (Dice < 0.7,
    measured 0.32–0.59): the referenced values, not the raw ones, say what the scans show."""
    n, h = 40, 2.0
    affine = np.diag([h, h, h, 1.0])
    affine[:3, 3] = -h * (n - 1) / 2
    grid = Grid(shape=(n,) * 3, affine=affine)
    wm = np.ones((n,) * 3, np.float32)

    def region(mu_D, mu_rho, sigma, peak):
        forward = PDEForward.from_tissues(
            wm, np.zeros_like(wm), grid, seed_sigma_mm=sigma, seed_amplitude=peak
        )
        params = GrowthParams.from_scale_free(
            jnp.float32(mu_D), jnp.float32(mu_rho), jnp.zeros(3), T=100.0
        )
        forward = forward.with_max_steps(2 * forward.stable_steps(params) + 10)
        return np.asarray(forward(params)) > 0.25

    def dice(a, b):
        return 2 * (a & b).sum() / (a.sum() + b.sum())

    reference = region(3.5, 2.1, 4.0, 1.0)
    mass, width = seed_moments(sigma_mm, amplitude)
    ref_mass, ref_width = seed_moments(4.0, 1.0)
    mu_D = math.sqrt(3.5**2 - (float(width) ** 2 - float(ref_width) ** 2) / 2)
    mu_rho = math.sqrt(2.1**2 - math.log(float(mass) / float(ref_mass)))
    assert [float(v) for v in referenced_growth(mu_D, mu_rho, sigma_mm, amplitude)] == (
        pytest.approx([3.5, 2.1], rel=1e-5)
    )
    assert dice(reference, region(mu_D, mu_rho, sigma_mm, amplitude)) >= 0.95
    assert dice(reference, region(3.5, 2.1, sigma_mm, amplitude)) < 0.7


@pytest.mark.parametrize("seed_shape", SEED_SHAPES)
def test_pure_diffusion_conserves_the_initial_mass(x64, seed_shape):
    """ρ = 0, D > 0: zero-flux finite volumes conserve Σu exactly in exact arithmetic, so the
    mass after 100 days equals the initial condition's to float64 rounding (1e-10 relative)."""
    forward = _phantom_forward(seed_shape)
    seed_mm = jnp.array([6.0, 4.0, 2.0])
    params = GrowthParams(D_w=0.5, rho=0.0, T=100.0, seed_mm=seed_mm)
    initial = forward.initial_density(seed_mm)
    final = eqx.filter_jit(forward.sized_for(50.0, 0.0))(params)
    assert np.all(np.isfinite(np.asarray(final)))
    assert float(jnp.max(final)) < float(jnp.max(initial))  # it did diffuse
    assert float(jnp.sum(final)) == pytest.approx(float(jnp.sum(initial)), rel=1e-10)


@pytest.mark.parametrize("seed_shape", SEED_SHAPES)
def test_gradient_in_the_seed_position_is_finite(seed_shape):
    """jax.grad of a growth solve's total density² w.r.t. the seed: finite and not all zero."""
    forward = _phantom_forward(seed_shape)
    forward = forward.sized_for(0.2 * 60.0, 0.05 * 60.0)

    def loss(seed_mm):
        params = GrowthParams(D_w=0.2, rho=0.05, T=60.0, seed_mm=seed_mm)
        return jnp.sum(jnp.square(forward(params)))

    gradient = np.asarray(jax.jit(jax.grad(loss))(jnp.array([6.0, 4.0, 2.0])))
    assert np.all(np.isfinite(gradient)) and np.any(gradient != 0.0)


def test_unusable_seed_options_are_refused():
    anatomy = make_phantom((8, 8, 8), 4.0)
    for options, message in [
        ({"seed_shape": "disc"}, "unknown seed shape"),
        ({"seed_sigma_mm": -1.0}, "seed_sigma_mm"),
        ({"seed_amplitude": 1.5}, "seed_amplitude"),
        ({"seed_shape": "heat-kernel", "seed_amplitude": 0.05}, "below its cut"),
    ]:
        with pytest.raises(ValueError, match=message):
            PDEForward.from_anatomy(anatomy, **options)


def test_config_seed_options_round_trip_and_checks():
    from bayestumor.config import CalibrationConfig
    from bayestumor.errors import InputError

    config = CalibrationConfig(seed_shape="heat-kernel", seed_sigma_mm=3.0, seed_amplitude=0.5)
    assert CalibrationConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    default = CalibrationConfig()
    assert (default.seed_shape, default.seed_sigma_mm, default.seed_amplitude) == (
        "gaussian",
        None,
        1.0,
    )
    for shape in SEED_SHAPES:  # the config knows the forward layer's shapes
        CalibrationConfig(seed_shape=shape)
    for options, message in [
        ({"seed_shape": "disc"}, "unknown seed shape"),
        ({"seed_sigma_mm": 0.0}, "seed_sigma_mm"),
        ({"seed_amplitude": 0.0}, "seed_amplitude"),
        ({"seed_shape": "heat-kernel", "seed_amplitude": 0.1}, "above its cut"),
        ({"forward": "surrogate", "seed_shape": "heat-kernel"}, "surrogate was trained"),
        ({"forward": "surrogate", "seed_sigma_mm": 6.0}, "surrogate was trained"),
    ]:
        with pytest.raises(InputError, match=message):
            CalibrationConfig(**options)


def test_build_forward_uses_the_configured_seed_and_refuses_it_for_the_surrogate():
    from bayestumor.config import CalibrationConfig
    from bayestumor.errors import InputError
    from bayestumor.workflows import build_forward

    anatomy = make_phantom((12, 12, 12), 4.0)
    lesion = np.zeros(anatomy.shape, bool)
    lesion[5:7, 5:7, 5:7] = True
    roi = Patient(anatomy, Observations(anatomy.grid, t1c=lesion, flair=lesion), "roi")
    config = CalibrationConfig(seed_shape="heat-kernel", seed_sigma_mm=5.0, seed_amplitude=0.6)
    forward = build_forward(roi, config)
    assert (forward.seed_shape, forward.seed_sigma_mm, forward.seed_amplitude) == (
        "heat-kernel",
        5.0,
        0.6,
    )
    with pytest.raises(InputError, match="surrogate was trained"):
        build_forward(roi, config, kind="surrogate")


@pytest.fixture
def patient_dir(tmp_path):
    anatomy = make_phantom((24, 24, 24), 4.0)
    for name in ("wm", "gm", "csf"):
        save_nifti(tmp_path / f"{name}.nii.gz", getattr(anatomy, name), anatomy.grid)
    lesion = np.zeros(anatomy.shape, bool)
    lesion[13:16, 9:12, 11:14] = True
    save_nifti(tmp_path / "t1c.nii.gz", lesion, anatomy.grid)
    save_nifti(tmp_path / "flair.nii.gz", lesion, anatomy.grid)
    return tmp_path


def test_cli_simulate_seed_shape_changes_the_initial_tumour(patient_dir, tmp_path):
    """After 0.01 days (≈ the initial condition) the heat-kernel seed holds less mass on fewer
    voxels than the Gaussian of the same width and amplitude: its tails below 0.1 are cut."""
    densities = {}
    for shape in SEED_SHAPES:
        out = tmp_path / shape / "density.nii.gz"
        argv = ["simulate", str(patient_dir), "--out", str(out), "--T", "0.01", "--quiet"]
        argv += ["--seed-shape", shape, "--seed-sigma-mm", "5", "--seed-amplitude", "0.8"]
        assert main(argv) == 0
        densities[shape] = load_nifti(out)[0]
    gaussian, cut = densities["gaussian"], densities["heat-kernel"]
    assert np.count_nonzero(cut > 1e-6) < np.count_nonzero(gaussian > 1e-6)
    assert cut.sum() < 0.9 * gaussian.sum()
    assert cut.max() == pytest.approx(gaussian.max(), rel=1e-3)


def test_cli_simulate_refuses_a_seed_cut_away(patient_dir, tmp_path, capsys):
    out = tmp_path / "density.nii.gz"
    argv = ["simulate", str(patient_dir), "--out", str(out), "--quiet"]
    assert main([*argv, "--seed-shape", "heat-kernel", "--seed-amplitude", "0.05"]) == 2
    assert "above its cut" in capsys.readouterr().err
    assert not out.exists()


def test_cli_calibrate_maps_seed_and_lesion_options_to_the_config(
    patient_dir, tmp_path, monkeypatch
):
    """The options reach `calibrate_patient`'s config; a ``--config`` file's values hold where
    the command line gives none, and explicit options override it."""
    import bayestumor.workflows

    seen = []

    def fake_calibrate(patient_dir, out, config):
        seen.append(config)
        return SimpleNamespace(out_dir=out, summary={"diagnostics": {"passed": True}})

    monkeypatch.setattr(bayestumor.workflows, "calibrate_patient", fake_calibrate)
    argv = ["calibrate", str(patient_dir), "--out", str(tmp_path / "run")]
    assert main([*argv, "--seed-shape", "heat-kernel", "--seed-sigma-mm", "3.162"]) == 0
    assert main([*argv, "--seed-amplitude", "0.5", "--lesion-tissue", "white-matter"]) == 0
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(seen[0].replace(lesion_tissue="brain").to_dict()))
    assert main([*argv, "--config", str(config_file)]) == 0
    assert main([*argv, "--config", str(config_file), "--seed-sigma-mm", "6"]) == 0
    as_tuples = [(c.seed_shape, c.seed_sigma_mm, c.seed_amplitude, c.lesion_tissue) for c in seen]
    assert as_tuples == [
        ("heat-kernel", 3.162, 1.0, "as-given"),
        ("gaussian", None, 0.5, "white-matter"),
        ("heat-kernel", 3.162, 1.0, "brain"),
        ("heat-kernel", 6.0, 1.0, "brain"),
    ]


@pytest.mark.parametrize(
    ("name", "values", "point", "step"),
    [("seed_sigma_mm", (2.5, 6.0), 5.0, 1e-4), ("seed_amplitude", (0.25, 0.7), 0.5, 1e-5)],
)
def test_sampled_seed_shape_equals_a_solver_built_with_it(x64, name, values, point, step):
    """`GrowthParams.seed_sigma_mm` and `.seed_amplitude` (nuisance parameters) override the
    solver's own width and peak, and the density is differentiable in each: central differences
    of a float64 solve agree."""
    anatomy = make_phantom((16, 16, 16), 4.0)
    base = dict(D_w=0.1, rho=0.03, T=150.0, seed_mm=jnp.array([4.0, -3.0, 2.0]))
    solver = PDEForward.from_anatomy(anatomy).sized_for(30.0, 8.0)
    for value in values:
        fixed = PDEForward.from_anatomy(anatomy, **{name: value}).sized_for(30.0, 8.0)
        np.testing.assert_allclose(
            solver(GrowthParams(**base, **{name: jnp.float64(value)})),
            fixed(GrowthParams(**base)),
            atol=1e-12,
        )

    def mass(value):
        return jnp.sum(solver(GrowthParams(**base, **{name: value})))

    point = jnp.float64(point)
    finite = (mass(point + step) - mass(point - step)) / (2 * step)
    assert float(jax.grad(mass)(point)) == pytest.approx(float(finite), rel=1e-5)
    assert float(finite) > 0  # a wider or higher seed holds more cells: a larger tumour


def test_seed_amplitude_prior_adds_a_parameter_the_surrogate_refuses():
    from bayestumor.config import SEED_AMPLITUDE_RANGE, CalibrationConfig, Priors
    from bayestumor.errors import InputError
    from bayestumor.model import CalibrationProblem, model_data_from_patient
    from tests._calibration_problems import FAST_PRIORS, synthetic_patient

    patient = synthetic_patient()
    forward = PDEForward.from_anatomy(patient.anatomy).sized_for(50.0, 30.0)
    data = model_data_from_patient(patient)
    priors = FAST_PRIORS.replace(seed_sigma=(3.0, 6.0), seed_amplitude=SEED_AMPLITUDE_RANGE)
    free = CalibrationProblem(forward, data, priors)
    assert {"log_seed_sigma", "log_seed_amplitude"} <= set(free.site_names)
    names = free.parameter_names
    start = names.index("seed_x")
    assert names[start : start + 5] == [
        "seed_x",
        "seed_y",
        "seed_z",
        "seed_sigma",
        "seed_amplitude",
    ]
    named = free.constrain(free.initial_position())
    low, high = SEED_AMPLITUDE_RANGE
    assert low <= float(free.growth_params(named).seed_amplitude) <= high
    fixed = CalibrationProblem(forward, data, FAST_PRIORS.replace(seed_amplitude=0.5))
    assert "seed_amplitude" not in fixed.parameter_names
    assert (
        float(fixed.growth_params(fixed.constrain(fixed.initial_position())).seed_amplitude) == 0.5
    )
    with pytest.raises(InputError, match="seed_amplitude needs forward='pde'"):
        CalibrationConfig(forward="surrogate", priors=Priors(seed_amplitude=SEED_AMPLITUDE_RANGE))
    with pytest.raises(InputError, match="peak density ≤ 1"):
        Priors(seed_amplitude=(0.5, 2.0))


def test_seed_width_prior_adds_a_parameter_the_surrogate_refuses():
    from bayestumor.config import SEED_SIGMA_RANGE_MM, CalibrationConfig, Priors
    from bayestumor.errors import InputError
    from bayestumor.model import CalibrationProblem, model_data_from_patient
    from tests._calibration_problems import FAST_PRIORS, synthetic_patient

    patient = synthetic_patient()
    forward = PDEForward.from_anatomy(patient.anatomy).sized_for(50.0, 30.0)
    data = model_data_from_patient(patient)
    free = CalibrationProblem(forward, data, FAST_PRIORS.replace(seed_sigma=(5.0, 12.0)))
    assert "log_seed_sigma" in free.site_names
    assert "seed_sigma" in free.parameter_names
    fixed = CalibrationProblem(forward, data, FAST_PRIORS.replace(seed_sigma=7.0))
    assert "log_seed_sigma" not in fixed.site_names
    assert "seed_sigma" not in fixed.parameter_names
    named = fixed.constrain(fixed.initial_position())
    assert float(named["seed_sigma"]) == 7.0  # recorded, and used by the forward map:
    assert float(fixed.growth_params(named).seed_sigma_mm) == 7.0
    assert CalibrationProblem(forward, data, FAST_PRIORS).growth_params(named).seed_sigma_mm is None
    with pytest.raises(InputError, match="seed_sigma needs forward='pde'"):
        CalibrationConfig(forward="surrogate", priors=Priors(seed_sigma=SEED_SIGMA_RANGE_MM))
    with pytest.raises(InputError, match="seed_sigma"):
        Priors(seed_sigma=(0.0, 4.0))  # log-uniform: positive bounds


def test_cli_calibrate_maps_likelihood_and_seed_nuisance_options(
    patient_dir, tmp_path, monkeypatch
):
    import bayestumor.workflows
    from bayestumor.config import SEED_AMPLITUDE_RANGE, SEED_SIGMA_RANGE_MM

    seen = []

    def fake_calibrate(patient_dir, out, config):
        seen.append(config)
        return SimpleNamespace(out_dir=out, summary={"diagnostics": {"passed": True}})

    monkeypatch.setattr(bayestumor.workflows, "calibrate_patient", fake_calibrate)
    argv = ["calibrate", str(patient_dir), "--out", str(tmp_path / "run")]
    assert main(argv) == 0
    assert main([*argv, "--likelihood", "exact", "--seed-width-free", "--seed-amplitude-free"]) == 0
    assert main([*argv, "--misfit-length", "15"]) == 0
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(seen[1].to_dict()))
    assert main([*argv, "--config", str(config_file)]) == 0  # the file's choices hold
    summary = [
        (c.likelihood, c.misfit_length_mm, c.priors.seed_sigma, c.priors.seed_amplitude)
        for c in seen
    ]
    assert summary == [
        ("calibrated", 10.0, None, None),
        ("exact", 10.0, SEED_SIGMA_RANGE_MM, SEED_AMPLITUDE_RANGE),
        ("calibrated", 15.0, None, None),
        ("exact", 10.0, SEED_SIGMA_RANGE_MM, SEED_AMPLITUDE_RANGE),
    ]
