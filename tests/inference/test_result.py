"""`build_result`: the DataTree and density draws agree with direct evaluations of the problem.

Independent truths: the per-voxel log-likelihood of a draw is the problem's own
`pointwise_log_likelihood` at that draw's brain density, evaluated here one draw at a time; the
stored density draws are the float32 forward solves rounded to half precision (relative error
≤ 2⁻¹¹); a thinned per-voxel group holds exactly the draws its ``draw`` coordinate names.
"""

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bayestumor.inference import DENSITY_DTYPE, SamplerRun, build_result, pointwise_draw_step
from tests._calibration_problems import TRUE_GROWTH, TRUE_SEED_MM, tiny_problem

CHAINS, DRAWS = 2, 40
# Draws of no chain: their diagnostics fail, which is not what these tests are about.
pytestmark = pytest.mark.filterwarnings("ignore::bayestumor.errors.DiagnosticsWarning")


@pytest.fixture(scope="module")
def problem_and_run():
    problem = tiny_problem(pet=True)
    # A cloud around the truth, as a posterior is: the tumours overlap.
    named = problem.named_parameters(problem.sample_prior(jax.random.key(0), 1))
    sites = {name: named[name][0] for name in problem.site_names}
    sites.update({f"log_{k}": np.float32(np.log(TRUE_GROWTH[k])) for k in ("D_w", "rho")})
    sites.update(zip(("seed_x", "seed_y", "seed_z"), np.float32(TRUE_SEED_MM), strict=True))
    sites = {k: jnp.asarray(v, jnp.float32) for k, v in sites.items()}
    center = {k: np.asarray(v)[None] for k, v in problem.unconstrain(sites).items()}
    rng = np.random.default_rng(0)
    flat = {
        name: np.asarray(v) + 0.05 * rng.standard_normal((CHAINS * DRAWS, *np.shape(v)[1:]))
        for name, v in center.items()
    }
    # Repeated draws, as resampling makes them: every third draw is its predecessor.
    repeat = np.arange(CHAINS * DRAWS)
    repeat[2::3] -= 1
    positions = {
        name: np.asarray(v)[repeat].reshape(CHAINS, DRAWS, *np.shape(v)[1:])
        for name, v in flat.items()
    }
    stats = {"diverging": np.zeros((CHAINS, DRAWS), bool)}
    run = SamplerRun("nuts", positions, stats, {}, 0, 0, 1.0)
    return problem, run


def _named(problem, run, chain, draw):
    position = {k: v[chain, draw][None] for k, v in run.positions.items()}
    return {k: v[0] for k, v in problem.named_parameters(position).items()}


@pytest.mark.parametrize("values_max", [None, 1])
def test_pointwise_groups_and_densities_match_direct_evaluation(problem_and_run, values_max):
    """All draws by default; with a budget of one value, one draw per chain (the first)."""
    problem, run = problem_and_run
    kwargs = {} if values_max is None else {"pointwise_values_max": values_max}
    result = build_result(problem, run, jax.random.key(1), **kwargs)
    tree = result.datatree
    loglik = tree["log_likelihood"]
    kept = np.asarray(loglik["draw"])
    expected_kept = np.arange(DRAWS) if values_max is None else np.array([0])
    np.testing.assert_array_equal(kept, expected_kept)
    np.testing.assert_array_equal(np.asarray(tree["posterior_predictive"]["draw"]), kept)
    assert tree.attrs["pointwise_draw_step"] == (1 if values_max is None else DRAWS)
    assert tree["posterior"].sizes["draw"] == DRAWS  # the posterior keeps every draw
    for chain, i in [(0, 0), (1, 0), (0, len(kept) - 1), (1, len(kept) // 2)]:
        named = _named(problem, run, chain, kept[i])
        direct = problem.pointwise_log_likelihood(named, *problem.brain_fields(named))
        for modality, values in direct.items():
            # float32 solves batched differently round differently: ~1e-5 relative.
            np.testing.assert_allclose(
                loglik[modality].values[chain, i], values, rtol=1e-4, atol=1e-5
            )
    assert result.densities.dtype == DENSITY_DTYPE
    assert result.densities.shape == (CHAINS * DRAWS, *problem.forward.grid.shape)
    for chain, draw in [(0, 0), (0, 2), (1, DRAWS - 1)]:
        exact = np.asarray(problem.density_volume(_named(problem, run, chain, draw)))
        stored = result.densities[chain * DRAWS + draw].astype(np.float32)
        # Half precision: relative rounding 2⁻¹¹ (subnormals below 6e-5: absolutely 6e-8), plus
        # the float32 batching difference.
        np.testing.assert_allclose(stored, exact, rtol=2**-11 + 1e-5, atol=1e-7)


def test_thinned_log_likelihood_still_gives_loo(problem_and_run):
    """PSIS-LOO reads the thinned group (its draws need not be the posterior's)."""
    problem, run = problem_and_run
    n_voxels = int(problem.data.voxel_index.shape[0])
    values_max = CHAINS * n_voxels * len(problem.data.modalities) * (DRAWS // 2)
    result = build_result(problem, run, jax.random.key(1), pointwise_values_max=values_max)
    tree = result.datatree
    assert tree.attrs["pointwise_draw_step"] == 2
    flair = tree["log_likelihood"]["flair"]
    assert flair.shape == (CHAINS, DRAWS // 2, n_voxels)
    # Voxels the prior draws' tumours reach in most draws (elsewhere α is clipped at ε and
    # the log-likelihood constant, which PSIS cannot smooth).
    values = np.asarray(flair).reshape(-1, n_voxels)
    distinct = np.array([np.unique(values[:, v]).size for v in range(n_voxels)])
    informative = np.flatnonzero(distinct >= values.shape[0] // 2)
    assert informative.size > 0
    loo = az.loo(tree.isel(voxel=informative), var_name="flair")
    assert np.isfinite(loo.elpd)


@pytest.mark.parametrize(
    ("draws", "per_draw", "values_max", "step"),
    [
        (500, 10, 10**6, 1),
        (500, 10, 5000, 1),
        (500, 10, 4990, 2),
        (500, 10**7, 2**29, 10),
        (7, 10, 1, 7),
    ],
)
def test_pointwise_draw_step_is_the_smallest_that_fits(draws, per_draw, values_max, step):
    assert pointwise_draw_step(draws, per_draw, values_max) == step
    kept = -(-draws // step)
    assert kept * per_draw <= values_max or kept == 1
    if step > 1:
        assert -(-draws // (step - 1)) * per_draw > values_max
