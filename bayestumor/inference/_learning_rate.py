"""The learning rate of a power likelihood, from the spatial correlation of the misfit.

The exact model treats every brain voxel as independent evidence. Real misfit — a segmentation
boundary a few millimetres off along a stretch, a registration error, a solver or a resolution
other than the model's — is spatially correlated, so the posterior is too narrow by about
√(n / n_eff). Generalised Bayes (Bissiri, Holmes & Walker 2016) keeps the likelihood's form
and raises it to a learning rate η ≤ 1; this module sets η from the data, by the sandwich
argument behind Lyddon, Holmes & Walker (2019) and Syring & Martin (2019):

At the MAP θ̂ let H be the Hessian of the negative log-likelihood (what the exact posterior
takes as its precision) and J = Var(∑ᵢ sᵢ) the variance of the total score, sᵢ = ∇ log p(yᵢ | θ̂)
per voxel. The frequentist covariance of θ̂ under misspecification is the sandwich H⁻¹ J H⁻¹;
the power posterior's is (ηH)⁻¹. A single η cannot match every direction, so it is set for the
parameters a user asks about — the growth parameters and the seed (`INTEREST_SITES`): with
r_k = (H⁻¹ J H⁻¹)_kk / (H⁻¹)_kk the factor by which the exact model understates the variance of
coordinate k,

    η = 1 / max_k r_k      over the coordinates of interest,

capped at 1 (never sharper than the exact model). When the seed's size is a nuisance, the growth
a user compares is the referenced one (μ_D,ref, μ_ρ,ref: `CalibrationProblem.named_parameters`),
a combination of log μ and the seed's width and peak that the scans pin down far more firmly
than any one coordinate; its direction g (the gradient of log μ_D,ref or log μ_ρ,ref, by central
differences) joins the max with r_g = gᵀ H⁻¹ J H⁻¹ g / gᵀ H⁻¹ g, so that a misfit confined to
that combination cannot leave η at 1. (Measured on four stress patients — boundary 3 and 5,
pet-bias 1, threshold 0 — r_g was 0.5–1.4, never above the coordinates' largest r_k: their
largest whitened inflations, 4–13.5, lie in other directions; and those patients' μ_ρ,ref
misses are biases that a variance correction does not see.) Each interval of interest is then
at least as wide as the sandwich says (Syring & Martin 2019 calibrate credible regions the same way, by
bootstrap); directions the data pin down more firmly (imaging parameters) come out wider than
needed. Also recorded: the eigenvalues of M = H^{-1/2} J H^{-1/2} (per whitened direction) and
p / tr M, the trace-matching rate of Lyddon, Holmes & Walker (2019), which is larger.

J is estimated as a spatial heteroscedasticity-and-autocorrelation-consistent sum (Conley 1999),

    J = ∑ᵢ ∑ⱼ k(|xᵢ − xⱼ|) sᵢ sⱼᵀ,   k(d) = exp(−d² / 2ℓ²),

with ℓ the `misfit_length_mm` bandwidth: scores that agree in sign over a neighbourhood (a
boundary displaced along a stretch) add up, independent ones cancel. The Gaussian kernel is
positive definite, so J is too, and it is applied separably on the ROI grid (three small
matrix products per score), never as an n × n matrix. With well-specified data E[J] = H and
η ≈ 1; with ℓ below the voxel size J is the plain sandwich ∑ sᵢ sᵢᵀ. (∑ᵢ sᵢ = 0 at the MAP, so
a bandwidth comparable to the whole ROI would cancel everything: ℓ must stay well below it.)

Scores and the Hessian come from central differences in the samplers' unconstrained space
(2p forward solves and 2p gradients): the PDE's custom adjoint rules out forward-mode
differentiation, and the per-voxel Jacobian by reverse mode would need n backward passes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.flatten_util import ravel_pytree

from bayestumor.imaging import Grid
from bayestumor.model import CalibrationProblem, Position, batched

INTEREST_SITES = frozenset(
    {"log_mu", "log_D_w", "log_rho", "log_mu_D", "log_mu_rho", "seed_x", "seed_y", "seed_z"}
)
"""Sample sites whose intervals η is set for: growth (log μ or log D_w, log ρ) and the seed."""
DERIVED_INTEREST = ("mu_D_ref", "mu_rho_ref")
"""Derived quantities η is also set for when the seed's size is a nuisance: the referenced
growth (`CalibrationProblem.named_parameters`)."""
IDENTIFIED_RELATIVE_CURVATURE = 1e-6
"""Directions whose likelihood curvature is below this fraction of the largest are not
identified by the scans (e.g. log T given μ_D and μ_ρ) and are left out of tr M."""


@dataclass(frozen=True)
class LearningRate:
    """The learning rate η of a calibration and how it was obtained.

    Attributes:
        value: η in (0, 1]; the likelihood is raised to this power.
        misfit_length_mm: bandwidth ℓ of the spatial kernel, mm.
        voxels: brain voxels in the likelihood, n.
        effective_voxels: η·n, the number of independent voxels the scans count as.
        inflation: eigenvalues of M = H^{-1/2} J H^{-1/2}, descending: by how much each
            whitened direction's variance is understated by the exact model.
        identified: number p of directions the likelihood identifies.
        coordinate_inflation: r per unconstrained coordinate of interest (``log_mu[0]``,
            ``seed_x``, ...) and per derived quantity of interest (``mu_rho_ref``, ...): the
            sandwich variance over the exact model's.
        trace_rate: p / tr M, the trace-matching learning rate (for comparison).
    """

    value: float
    misfit_length_mm: float
    voxels: int
    effective_voxels: float
    inflation: tuple[float, ...]
    identified: int
    coordinate_inflation: dict[str, float]
    trace_rate: float

    @classmethod
    def exact(cls, voxels: int) -> LearningRate:
        """η = 1: the exact per-voxel model, nothing estimated."""
        return cls(1.0, 0.0, voxels, float(voxels), (), 0, {}, 1.0)

    def to_dict(self) -> dict:
        """JSON-ready form (``summary.json``, ``diagnostics.json``)."""
        kind = "exact" if not self.inflation else "calibrated"
        return {"likelihood": kind, **dataclasses.asdict(self)}


def misfit_learning_rate(
    problem: CalibrationProblem, position: Position, length_mm: float, *, step: float = 1e-2
) -> LearningRate:
    """η for `problem` (with its exact likelihood, η = 1) at `position` (its MAP; module
    docstring).

    Args:
        problem: the calibration problem; its own `learning_rate` is ignored.
        position: the MAP in unconstrained space (`find_map`).
        length_mm: kernel bandwidth ℓ, mm (> 0).
        step: central-difference step in unconstrained coordinates.
    """
    information, meat, voxels = misfit_sandwich(problem, position, length_mm, step=step)
    return sandwich_learning_rate(
        information,
        meat,
        length_mm,
        voxels,
        coordinate_names(position),
        derived=derived_gradients(problem, position, step=step),
    )


def derived_gradients(
    problem: CalibrationProblem, position: Position, *, step: float = 1e-2
) -> dict[str, np.ndarray]:
    """Gradients of log μ_D,ref and log μ_ρ,ref (`DERIVED_INTEREST`) in the flat unconstrained
    coordinates at `position`, by central differences of the matched referenced growth
    (`AbstractForwardModel.referenced_growth`, as `CalibrationProblem.named_parameters`).
    Empty when the seed's size is fixed, or when some of the 2d perturbed tumours could not be
    matched (their closed-form fallback would make the difference meaningless)."""
    if not problem.priors.seed_nuisance_names:
        return {}
    flat, unravel = ravel_pytree(position)
    d = flat.size
    named = jax.vmap(problem.constrain)(jax.vmap(unravel)(flat + _central_offsets(flat, step)))
    *referenced, matched = problem.sampling_forward.referenced_growth(problem.growth_params(named))
    if not np.all(matched):
        return {}
    gradients = {}
    for name, values in zip(DERIVED_INTEREST, referenced, strict=True):
        log_value = np.log(np.asarray(values, np.float64))
        gradients[name] = (log_value[:d] - log_value[d:]) / (2 * step)
    return gradients


SANDWICH_BATCH = 4
"""Forward solves `misfit_sandwich` runs at once (each holds about 600 bytes per ROI voxel; all
2d = 22 of the eleven-parameter model at once ran a 2-million-voxel 1 mm ROI out of 24 GB)."""


def misfit_sandwich(
    problem: CalibrationProblem, position: Position, length_mm: float, *, step: float = 1e-2
) -> tuple[np.ndarray, np.ndarray, int]:
    """The sandwich's pieces at `position` (module docstring): H, the Hessian of the negative
    exact log-likelihood, J, the kernel-weighted score covariance (bandwidth `length_mm`), both
    (d, d) over the flat unconstrained coordinates, and n, the voxels in the likelihood."""
    exact = dataclasses.replace(problem, learning_rate=1.0)
    flat, unravel = ravel_pytree(position)
    d = flat.size

    def pointwise(x):
        named = exact.constrain(unravel(x))
        return sum(exact.pointwise_log_likelihood(named, *exact.brain_fields(named)).values())

    offsets = _central_offsets(flat, step)
    # A few solves at a time: 2d at once held 26 GB on a 2-million-voxel 1 mm ROI.
    values = np.asarray(batched(pointwise, SANDWICH_BATCH)(flat + offsets), np.float64)
    scores = (values[:d] - values[d:]).T / (2 * step)  # (n, d)

    gradient = jax.jit(jax.grad(lambda x: jnp.sum(pointwise(x))))
    hessian = np.stack(
        [
            np.asarray(gradient(flat + e) - gradient(flat - e), np.float64) / (2 * step)
            for e in offsets[:d]
        ]
    )
    information = -0.5 * (hessian + hessian.T)
    smoothed = kernel_smoothed(
        scores, problem.forward.grid, np.asarray(problem.data.voxel_index), length_mm
    )
    return information, scores.T @ smoothed, scores.shape[0]


def _central_offsets(flat: Array, step: float) -> Array:
    """The (2d, d) offsets of a central difference of every one of `flat`'s d coordinates:
    +step along each, then −step along each."""
    eye = jnp.eye(flat.size, dtype=flat.dtype)
    return jnp.concatenate([eye, -eye]) * step


def coordinate_names(position: Position) -> list[str]:
    """Names of the flat unconstrained coordinates in `ravel_pytree` order (sites sorted)."""
    names = []
    for site in sorted(position):
        size = int(np.size(position[site]))
        names += [site] if size == 1 else [f"{site}[{i}]" for i in range(size)]
    return names


def kernel_smoothed(
    scores: np.ndarray, grid: Grid, index: np.ndarray, length_mm: float
) -> np.ndarray:
    """∑ⱼ k(|xᵢ − xⱼ|) sⱼ for every voxel i, k(d) = exp(−d²/2ℓ²): the scores (n, d) of the
    voxels at flat `index` of `grid` placed on the grid, blurred by the separable kernel (one
    matrix per axis; the grid's axes are orthogonal) and read back at those voxels, (n, d)."""
    volume = np.zeros((int(np.prod(grid.shape)), scores.shape[1]))
    volume[index] = scores
    volume = volume.reshape((*grid.shape, scores.shape[1]))
    for axis, (n, h) in enumerate(zip(grid.shape, grid.spacing_mm, strict=True)):
        distance = (np.arange(n)[:, None] - np.arange(n)[None, :]) * float(h)
        kernel = np.exp(-0.5 * np.square(distance / length_mm))
        volume = np.moveaxis(np.tensordot(kernel, volume, axes=(1, axis)), 0, axis)
    return volume.reshape(-1, scores.shape[1])[index]


def sandwich_learning_rate(
    information: np.ndarray,
    meat: np.ndarray,
    length_mm: float,
    voxels: int,
    names: list[str],
    derived: dict[str, np.ndarray] | None = None,
) -> LearningRate:
    """η = 1 / max r over the coordinates and derived quantities of interest (module
    docstring), on the identified directions of H (its pseudo-inverse elsewhere), capped at 1.

    Args:
        information: H, the Hessian of the negative log-likelihood, (d, d).
        meat: J, the (kernel-weighted) variance of the total score, (d, d).
        length_mm: the kernel bandwidth J was estimated with (recorded).
        voxels: n, the number of voxels in the likelihood.
        names: the d coordinates' names (``log_mu[0]``, ``seed_x``, ...), to find those of
            `INTEREST_SITES`.
        derived: gradients (d,) of derived quantities of interest (`derived_gradients`), each
            judged as the direction it defines.
    """
    curvature, vectors = np.linalg.eigh(information)
    keep = curvature > IDENTIFIED_RELATIVE_CURVATURE * max(float(curvature.max()), 0.0)
    if not keep.any():
        return LearningRate.exact(voxels)
    whiten = vectors[:, keep] / np.sqrt(curvature[keep])  # H⁺ = W Wᵀ
    meat = 0.5 * (meat + meat.T)
    inflation = np.linalg.eigvalsh(whiten.T @ meat @ whiten)[::-1]
    p = int(keep.sum())
    model_variance = np.sum(np.square(whiten), axis=1)  # diag H⁺
    sandwich = whiten @ (whiten.T @ meat @ whiten) @ whiten.T
    coordinate = {
        name: float(sandwich[k, k] / model_variance[k])
        for k, name in enumerate(names)
        if name.split("[")[0] in INTEREST_SITES and model_variance[k] > 0
    }
    for name, gradient in (derived or {}).items():
        projected = whiten.T @ np.asarray(gradient, np.float64)  # Wᵀg: gᵀH⁺g = |Wᵀg|²
        variance = float(projected @ projected)
        if variance > 0:
            coordinate[name] = float(projected @ (whiten.T @ meat @ whiten) @ projected / variance)
    worst = max(coordinate.values(), default=float(inflation[0]))
    value = float(min(1.0, 1.0 / max(worst, 1e-300)))
    return LearningRate(
        value=value,
        misfit_length_mm=float(length_mm),
        voxels=voxels,
        effective_voxels=value * voxels,
        inflation=tuple(float(x) for x in inflation),
        identified=p,
        coordinate_inflation=coordinate,
        trace_rate=float(min(1.0, p / max(float(inflation.sum()), 1e-300))),
    )


__all__ = [
    "DERIVED_INTEREST",
    "IDENTIFIED_RELATIVE_CURVATURE",
    "INTEREST_SITES",
    "LearningRate",
    "coordinate_names",
    "derived_gradients",
    "kernel_smoothed",
    "misfit_learning_rate",
    "misfit_sandwich",
    "sandwich_learning_rate",
]
