"""Samplers on a tiny synthetic patient: calibration over replicates, agreement, work counts.

Independent truths:

- coverage: 90 % credible intervals computed from posteriors of datasets whose parameters were
  drawn from the prior contain the truth 90 % of the time (the defining property of a correct
  posterior; Cook, Gelman & Rubin 2006, Talts et al. 2018), checked with a binomial tolerance;
- agreement: NumPyro NUTS, BlackJAX NUTS and tempered SMC sample the same posterior, so their
  means differ by no more than Monte Carlo error;
- work counts: the gradient and forward-solve counts each sampler reports equal what it did —
  forward solves counted by a host callback inside the forward map, leapfrog steps read from
  the per-draw statistics.

T and the imaging parameters are fixed (5 free parameters: D_w, ρ, seed x, y, z) except in the
eleven-parameter smoke test.
"""

import threading
import warnings

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from bayestumor.errors import DiagnosticsWarning
from bayestumor.forward import AbstractForwardModel, GrowthParams
from bayestumor.imaging import Grid
from bayestumor.inference import (
    build_result,
    chain_starts,
    find_map,
    laplace_covariance,
    run_inference,
    sample_blackjax_nuts,
    sample_numpyro_nuts,
    sample_smc,
)
from bayestumor.model import CalibrationProblem, Priors
from tests._calibration_problems import (
    TRUE_GROWTH,
    TRUE_IMAGING,
    TRUE_SEED_MM,
    synthetic_patient,
    tiny_problem,
)

TRUTH = {"D_w": TRUE_GROWTH["D_w"], "rho": TRUE_GROWTH["rho"]} | {
    f"seed_{axis}": value for axis, value in zip("xyz", TRUE_SEED_MM, strict=True)
}
CHAINS, WARMUP, DRAWS, MAX_TREE_DEPTH = 2, 80, 100, 6
SMC_PARTICLES, SMC_STEPS = 128, 5

_FORWARD_SOLVES = [0]
_COUNT_LOCK = threading.Lock()


def _count_solves(values) -> None:
    # XLA runs host callbacks on several threads: without the lock increments get lost. Under
    # `vmap` the callback may receive the whole batch at once: count its elements.
    with _COUNT_LOCK:
        _FORWARD_SOLVES[0] += int(np.size(values))


class _CountingForward(AbstractForwardModel):
    """The wrapped forward map, plus a host callback that counts how often it is evaluated."""

    inner: AbstractForwardModel

    @property
    def grid(self) -> Grid:
        return self.inner.grid

    def __call__(self, params: GrowthParams) -> jax.Array:
        jax.debug.callback(_count_solves, jnp.asarray(params.D_w))
        return self.inner(params)


def _counted(run_sampler):
    """Run `run_sampler()`; return its result and the forward solves it made."""
    _FORWARD_SOLVES[0] = 0
    result = run_sampler()
    return result, _FORWARD_SOLVES[0]


@pytest.fixture(scope="module")
def counting_problem():
    problem = tiny_problem()
    return CalibrationProblem(_CountingForward(problem.forward), problem.data, problem.priors)


@pytest.fixture(scope="module")
def laplace(counting_problem):
    """MAP and Laplace covariance: what `run_inference` gives NUTS (start, mass matrix) and
    SMC (its reference)."""
    center, _ = find_map(counting_problem)
    covariance, _ = laplace_covariance(counting_problem, center)
    return center, covariance


@pytest.fixture(scope="module")
def map_start(laplace):
    center, covariance = laplace
    return chain_starts(center, CHAINS, jax.random.key(10), covariance), covariance


def _nuts_run(sample, problem, map_start, seed):
    starts, covariance = map_start
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiagnosticsWarning)
        run, solves = _counted(
            lambda: sample(
                problem,
                jax.random.key(seed),
                starts,
                chains=CHAINS,
                warmup=WARMUP,
                draws=DRAWS,
                max_tree_depth=MAX_TREE_DEPTH,
                progress=False,
                inverse_mass_matrix=covariance,
            )
        )
        return build_result(problem, run, jax.random.key(seed + 100)), solves


@pytest.fixture(scope="module")
def nuts_result(counting_problem, map_start):
    """NumPyro NUTS (the ``"nuts"`` sampler's path) and the forward solves it made."""
    return _nuts_run(sample_numpyro_nuts, counting_problem, map_start, seed=1)


@pytest.fixture(scope="module")
def blackjax_result(counting_problem, map_start):
    return _nuts_run(sample_blackjax_nuts, counting_problem, map_start, seed=3)


def _smc_run(problem, reference):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiagnosticsWarning)
        run, solves = _counted(
            lambda: sample_smc(
                problem,
                jax.random.key(2),
                particles=SMC_PARTICLES,
                mcmc_steps=SMC_STEPS,
                progress=False,
                reference=reference,
            )
        )
        return build_result(problem, run, jax.random.key(102)), solves


@pytest.fixture(scope="module")
def smc_result(counting_problem, laplace):
    """SMC as `run_inference` runs it: tempered from the widened Laplace approximation."""
    return _smc_run(counting_problem, laplace)


@pytest.fixture(scope="module")
def smc_from_prior(counting_problem):
    return _smc_run(counting_problem, None)


def _values(result, name):
    return np.asarray(result.datatree["posterior"][name]).reshape(-1)


def test_map_recovers_truth():
    """Independent truth: the simulation's parameters; the mode of one dataset lies within 30 %
    of them (the posterior sd of D_w and ρ on this patient is ≈ 10 %)."""
    problem = tiny_problem()
    position, info = find_map(problem)
    named = problem.constrain(position)
    assert info["log_density"] > info["log_density_start"]
    assert float(named["D_w"]) == pytest.approx(TRUTH["D_w"], rel=0.3)
    assert float(named["rho"]) == pytest.approx(TRUTH["rho"], rel=0.3)


# --- calibration over replicates -------------------------------------------------------------

COVERAGE_PRIORS = Priors(
    D_w=(0.05, 0.2),
    rho=(0.02, 0.05),
    T=TRUE_GROWTH["T"],
    u_c_t1c=TRUE_IMAGING.u_c_t1c,
    u_c_flair=TRUE_IMAGING.u_c_flair,
    sigma_alpha=TRUE_IMAGING.sigma_alpha,
)
"""Growth ranges whose tumours are visible on the 12³ × 10 mm phantom (fronts 20–60 mm)."""
COVERAGE_REPLICATES = 12
COVERAGE_NAMES = ("D_w", "rho", "seed_x", "seed_y", "seed_z")
COVERAGE_FALSE_ALARM = 0.001


@pytest.mark.slow
def test_nuts_90_percent_intervals_cover_prior_drawn_truths_90_percent_of_the_time():
    """Coverage over replicates (Cook, Gelman & Rubin 2006): R = 12 datasets, each simulated by
    `simulate_patient(noisy=True)` (segmentations drawn voxel by voxel from Bernoulli(α(u)))
    from parameters drawn from the prior — the seed prior centred on a fixed point rather than
    on the simulated lesion, so that the generating and the fitted prior are the same. For a
    correct posterior each of the R × 5 truths lies in its central 90 % interval with
    probability 0.9; the count must fall in the binomial acceptance region of false-alarm rate
    0.001 (two-sided, `scipy.stats.binom`; with R × 5 = 60 it is [45, 60]: a true coverage of
    70 % fails with probability 0.76, 65 % with 0.93 — a check for gross miscalibration, all
    that 12 replicates can give). The five indicators of one replicate are not independent,
    which widens the count's true spread somewhat beyond the binomial one. Measured: 54 and 53
    of 60 in two settings; ≈ 3.5 min (slow).

    The sampler is NumPyro NUTS on the package's NumPyro model (`tumour_model`, the model the
    ``"nuts"`` sampler runs) with the dataset as a traced model argument
    (``jit_model_args=True``): one compilation for all replicates. Through `run_inference`
    every replicate would be a new `CalibrationProblem` and recompile (≈ 40 s of CPU each on
    this problem against ≈ 2 ms per gradient).
    """
    from numpyro.infer import MCMC, NUTS, Predictive, init_to_median

    from bayestumor.forward import FixedStep, PDEForward
    from bayestumor.model import tumour_model
    from bayestumor.workflows import simulate_patient
    from tests._calibration_problems import REACTION_STEP

    template = synthetic_patient(pet=False)
    anatomy = template.anatomy
    forward = PDEForward.from_anatomy(
        anatomy, stepping=FixedStep(reaction_step=REACTION_STEP)
    ).sized_for(*COVERAGE_PRIORS.max_diffusion_and_reaction())
    base = tiny_problem().data._replace(seed_center_mm=jnp.asarray(TRUE_SEED_MM, jnp.float32))
    index = np.asarray(base.voxel_index)

    def model(data, include_likelihood=True):
        tumour_model(forward, data, COVERAGE_PRIORS, include_likelihood=include_likelihood)

    key_truth, key_data, key_mcmc = jax.random.split(jax.random.key(2024), 3)
    truths = Predictive(model, num_samples=COVERAGE_REPLICATES)(
        key_truth, base, include_likelihood=False
    )
    mcmc = MCMC(
        NUTS(
            model,
            max_tree_depth=5,
            dense_mass=True,
            init_strategy=init_to_median(num_samples=15),
        ),
        num_warmup=80,
        num_samples=100,
        num_chains=1,
        jit_model_args=True,
        progress_bar=False,
    )
    inside = np.zeros((COVERAGE_REPLICATES, len(COVERAGE_NAMES)), bool)
    for replicate in range(COVERAGE_REPLICATES):
        truth = {name: float(truths[name][replicate]) for name in COVERAGE_NAMES}
        params = GrowthParams(
            D_w=jnp.float32(truth["D_w"]),
            rho=jnp.float32(truth["rho"]),
            T=jnp.float32(TRUE_GROWTH["T"]),
            seed_mm=jnp.asarray([truth[f"seed_{a}"] for a in "xyz"], jnp.float32),
        )
        observations = simulate_patient(
            anatomy,
            params,
            TRUE_IMAGING,
            jax.random.fold_in(key_data, replicate),
            forward=forward,
            noisy=True,
            pet=False,
        ).observations
        data = base._replace(
            observed={
                name: jnp.asarray(getattr(observations, name).reshape(-1)[index], jnp.float32)
                for name in ("t1c", "flair")
            }
        )
        mcmc.run(jax.random.fold_in(key_mcmc, replicate), data)
        samples = mcmc.get_samples()
        for column, name in enumerate(COVERAGE_NAMES):
            low, high = np.quantile(np.asarray(samples[name]), [0.05, 0.95])
            inside[replicate, column] = low <= truth[name] <= high
    n = inside.size
    low = stats.binom.ppf(COVERAGE_FALSE_ALARM / 2, n, 0.9)
    high = stats.binom.isf(COVERAGE_FALSE_ALARM / 2, n, 0.9)
    covered = int(inside.sum())
    per_parameter = dict(zip(COVERAGE_NAMES, inside.sum(axis=0).tolist(), strict=True))
    assert low <= covered <= high, (covered, n, (low, high), per_parameter)


# --- three samplers, one posterior -----------------------------------------------------------


def _mean_and_standard_error(result, name):
    """Posterior mean and its Monte Carlo standard error sd / √ESS.

    MCMC: bulk ESS of the parameter. SMC: the sample's approximate ESS (min of the final weight
    ESS and the distinct ancestors; see `bayestumor.inference.diagnose`), not an
    autocorrelation ESS along the particle index, which ignores shared ancestry.
    """
    values = _values(result, name)
    diagnostics = result.diagnostics
    if diagnostics["sampler"] == "smc":
        ess = diagnostics["smc"]["ess"]
        assert diagnostics["parameters"][name]["ess_bulk"] is None
    else:
        ess = diagnostics["parameters"][name]["ess_bulk"]
    return values.mean(), values.std() / np.sqrt(ess), values.std()


@pytest.mark.slow
def test_numpyro_nuts_blackjax_nuts_and_smc_agree_within_monte_carlo_error(
    nuts_result, blackjax_result, smc_result
):
    """Three samplers of one posterior: every pair of posterior means differs by less than 4
    Monte Carlo standard errors of the difference (3 pairs × 5 parameters at 4 se: false-alarm
    rate ≈ 15 × 6e-5 ≈ 1e-3), and the posterior sds agree within a factor 1.6 (the sd of an
    sd estimate from ESS ≈ 100 draws is ≈ 7 %, so 1.6 is > 4 se of the log ratio)."""
    results = {
        "numpyro-nuts": nuts_result[0],
        "blackjax-nuts": blackjax_result[0],
        "smc": smc_result[0],
    }
    pairs = [("numpyro-nuts", "blackjax-nuts"), ("numpyro-nuts", "smc"), ("blackjax-nuts", "smc")]
    for name in TRUTH:
        summaries = {kind: _mean_and_standard_error(r, name) for kind, r in results.items()}
        for a, b in pairs:
            (mean_a, se_a, sd_a), (mean_b, se_b, sd_b) = summaries[a], summaries[b]
            assert abs(mean_a - mean_b) < 4 * np.hypot(se_a, se_b), (name, a, b, summaries)
            assert 1 / 1.6 < sd_a / sd_b < 1.6, (name, a, b, summaries)


def test_datatree_groups_and_loo(nuts_result):
    """Structure of the result (groups, shapes, units) and PSIS-LOO on its log-likelihood."""
    result = nuts_result[0]
    tree = result.datatree
    for group in (
        "posterior",
        "sample_stats",
        "log_likelihood",
        "posterior_predictive",
        "observed_data",
        "constant_data",
    ):
        assert group in tree.children, group
    n_voxels = tree["observed_data"].sizes["voxel"]
    assert tree["log_likelihood"]["t1c"].shape == (CHAINS, DRAWS, n_voxels)
    assert tree["posterior"]["D_w"].attrs["units"] == "mm^2/day"
    assert np.asarray(tree["sample_stats"]["diverging"]).dtype == bool
    # Voxels far from the tumour have a constant log-likelihood (α clipped at ε) that PSIS
    # cannot smooth ("All tail values are the same"); LOO is taken over the informative ones.
    flair = tree["log_likelihood"]["flair"]
    informative = np.flatnonzero(np.asarray(flair.std(("chain", "draw"))) > 1e-6)
    assert informative.size > 0
    loo = az.loo(tree.isel(voxel=informative), var_name="flair")
    assert np.isfinite(loo.elpd)
    assert result.densities.shape == (CHAINS * DRAWS, *tiny_problem().forward.grid.shape)


@pytest.mark.parametrize("sampler", ["numpyro", "blackjax"])
def test_nuts_gradient_count_is_the_leapfrog_steps_taken(sampler, nuts_result, blackjax_result):
    """NUTS takes one gradient per leapfrog step. Independent truths: the per-draw step counts
    in sample_stats (``n_steps``), the warm-up bounds (each warm-up iteration takes between 1
    and 2^depth − 1 steps) and the forward solves counted inside the forward map. Those are the
    reported gradients, plus — NumPyro only — one solve per collected iteration, warm-up
    included (NumPyro computes each draw's deterministic sites by running the whole model,
    likelihood and all), plus a few for the initial gradients and step-size searches (at most
    25 per chain)."""
    result, solves = nuts_result if sampler == "numpyro" else blackjax_result
    reported = result.diagnostics["gradient_evaluations"]
    sampled_steps = int(np.asarray(result.datatree["sample_stats"]["n_steps"]).sum())
    assert sampled_steps >= CHAINS * DRAWS
    warmup_steps = reported - sampled_steps
    assert CHAINS * WARMUP <= warmup_steps <= CHAINS * WARMUP * (2**MAX_TREE_DEPTH - 1)
    postprocessing = CHAINS * (WARMUP + DRAWS) if sampler == "numpyro" else 0
    unexplained = solves - reported - postprocessing
    assert 0 <= unexplained <= 25 * CHAINS, (reported, postprocessing, solves)


def test_smc_forward_solve_count_is_exact(smc_result):
    """RMH-SMC reports S·N·(m + 3) + N·(m + 2) forward solves (`sample_smc`'s docstring, read
    off BlackJAX's kernels); the solves counted inside the forward map during `sample_smc` are
    exactly that plus N for the log density of the returned particles."""
    result, solves = smc_result
    stages = result.diagnostics["smc"]["stages"]
    expected = (
        stages * SMC_PARTICLES * (SMC_STEPS + 3) + SMC_PARTICLES * (SMC_STEPS + 2) + SMC_PARTICLES
    )
    assert result.diagnostics["density_evaluations"] + SMC_PARTICLES == solves == expected
    assert result.diagnostics["gradient_evaluations"] == 0


@pytest.mark.slow
def test_smc_from_the_laplace_reference_takes_fewer_stages_to_the_same_evidence(
    smc_result, smc_from_prior
):
    """Tempering from the Laplace approximation and from the prior bridge to the same
    posterior, so both estimate the same log evidence log p(y) — an independent check of each
    path's weights (its sd at N = 128 is a few tenths of a nat; tolerance 1 nat). The
    Laplace reference needs at most half the stages (it starts close to the posterior; from
    the prior, log L spans hundreds of nats)."""
    laplace = smc_result[0].diagnostics["smc"]
    prior = smc_from_prior[0].diagnostics["smc"]
    assert abs(laplace["log_marginal_likelihood"] - prior["log_marginal_likelihood"]) < 1.0, (
        laplace["log_marginal_likelihood"],
        prior["log_marginal_likelihood"],
    )
    assert laplace["stages"] <= prior["stages"] / 2, (laplace["stages"], prior["stages"])
    for name in TRUTH:
        mean, se, _ = _mean_and_standard_error(smc_result[0], name)
        prior_mean, prior_se, _ = _mean_and_standard_error(smc_from_prior[0], name)
        assert abs(mean - prior_mean) < 4 * np.hypot(se, prior_se), name


def test_smc_diagnostics_report_weight_ess_not_autocorrelation_ess(smc_result):
    """SMC particles share ancestors, so per-parameter R-hat/ESS are None and the sample's ESS
    is min(final weight ESS, distinct ancestors), each between 1 and N; the schedule runs from
    λ = 0 to 1 with one weight ESS per stage."""
    smc = smc_result[0].diagnostics["smc"]
    for values in smc_result[0].diagnostics["parameters"].values():
        assert values == {"r_hat": None, "ess_bulk": None, "ess_tail": None}
    assert 1.0 <= smc["final_weight_ess"] <= SMC_PARTICLES
    assert 1 <= smc["final_distinct_ancestors"] <= SMC_PARTICLES
    assert smc["ess"] == min(smc["final_weight_ess"], smc["final_distinct_ancestors"])
    assert smc_result[0].diagnostics["effective_sample_size"] == smc["ess"]
    assert smc["tempering_schedule"][0] == 0.0 and smc["tempering_schedule"][-1] == 1.0
    assert np.isfinite(smc["log_marginal_likelihood"])
    assert len(smc["weight_ess"]) == smc["stages"]


def test_blackjax_nuts_runs_and_short_runs_warn():
    """BlackJAX NUTS produces the same structure; a 10-draw run fails diagnostics loudly."""
    with pytest.warns(DiagnosticsWarning, match="diagnostics failed"):
        result = run_inference(
            tiny_problem(),
            "blackjax-nuts",
            jax.random.key(4),
            chains=2,
            warmup=20,
            draws=10,
            progress=False,
        )
    assert result.datatree["posterior"]["D_w"].shape == (2, 10)
    assert result.diagnostics["passed"] is False


@pytest.mark.parametrize("sampler", ["nuts", "blackjax-nuts", "smc"])
def test_every_sampler_runs_with_all_eleven_parameters_free(sampler):
    """Default priors (D_w, ρ and T free: the model samples the vector site ``log_mu`` and
    ``log_T``, every imaging parameter free): each sampler returns finite draws inside the prior
    box, and the log density it reports for each draw is the problem's log density at that
    draw's unconstrained position (recomputed here by `CalibrationProblem.log_density`;
    NumPyro's potential energy and BlackJAX's state are independent computations of it, so a
    mix-up of sites, transforms or Jacobians between sampler and problem shows)."""
    from bayestumor.model import bounds

    problem = tiny_problem(pet=True, priors=Priors())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiagnosticsWarning)
        result = run_inference(
            problem,
            sampler,
            jax.random.key(0),
            chains=1,
            warmup=8,
            draws=8,
            smc_particles=16,
            smc_mcmc_steps=2,
            progress=False,
        )
    posterior = {k: np.asarray(v, np.float64) for k, v in result.datatree["posterior"].items()}
    assert len(posterior) == 13  # 11 parameters + mu_D, mu_rho
    for name in ("D_w", "rho", "T", "u_c_t1c", "u_c_flair", "sigma_alpha", "b", "sigma"):
        low, high = bounds(getattr(problem.priors, name))
        values = posterior[name]
        assert np.all(np.isfinite(values)), name
        assert np.all((values >= low * (1 - 1e-5)) & (values <= high * (1 + 1e-5))), name
    positions = {
        k: np.asarray(v).reshape(-1, *np.shape(v)[2:]) for k, v in result.run.positions.items()
    }
    log_density = np.asarray(jax.jit(jax.vmap(problem.log_density))(positions), np.float64)
    reported = np.asarray(result.datatree["sample_stats"]["lp"], np.float64).reshape(-1)
    np.testing.assert_allclose(reported, log_density, rtol=1e-4, atol=1e-2)


def test_only_the_default_solver_declares_itself_pmap_safe():
    """Parallel chains need `pmap`: the default solver's hand-written adjoint allows it;
    diffrax's adaptive solve fails under it, so it must report itself unsafe (and then chains
    run one after the other). The command line's parallel run: tests/test_calibrate.py."""
    from bayestumor.forward import AdaptiveStep

    forward = tiny_problem().forward
    assert forward.pmap_safe and not forward.with_stepping(AdaptiveStep()).pmap_safe
