"""Model selection per series by AICc, with Akaike weights.

Candidates (`CANDIDATES`; all fitted by least squares on log burden, the lognormal noise law):

- ``"fixed"``: ``A₀, λ, S, λ_decay`` fitted; ``slope = 0.2``/day, ``delay = 21`` days,
  ``regrowth = 1`` fixed (4 parameters);
- ``"regrowth"``: as ``"fixed"`` plus the survivors' own regrowth rate (5 parameters);
- ``"free"``: as ``"fixed"`` with the slope and delay of the transition fitted too (6).

For ``n`` fitted visits, ``p`` fitted parameters and ``K = p + 1`` (the noise σ is estimated
too), with ``RSS`` the sum of squared log residuals (Hurvich & Tsai, 1989):

    AICc = n log(RSS / n) + 2K + 2K(K + 1) / (n − K − 1),

defined only for ``n > K + 1``; the weight of candidate ``m`` is
``w_m = exp(−Δ_m / 2) / Σ exp(−Δ_j / 2)`` with ``Δ_m = AICc_m − min AICc``. A series with too
few visits for any candidate's AICc gets the candidate with the fewest parameters that it can
still be fitted with (``n ≥ p``), flagged ``by_aicc = False`` and NaN weights; one with fewer
visits than that gets none (``model = ""``).

AICc is strict for short series: ``"fixed"`` needs 7 fitted visits, ``"regrowth"`` 8 and
``"free"`` 9, so in the ``train`` setup of 4–8 visits the per-series least-squares fits mostly
fall back to ``"fixed"`` — the reason the package's default forecast pools the series instead
(`pooled_bands`; numbers in ``docs/api/radiotherapy.md``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from bayestumor._custom_types import PRNGKeyArray
from bayestumor.errors import InputError
from bayestumor.radiotherapy._bootstrap import BootstrapConfig, BootstrapResult, bootstrap_batch
from bayestumor.radiotherapy._data import Series, SeriesBatch
from bayestumor.radiotherapy._fit import DEFAULT_FIXED, FitConfig, FitResult, fit_arrays

CANDIDATES: Mapping[str, FitConfig] = {
    "fixed": FitConfig(fixed=DEFAULT_FIXED, log_residuals=True),
    "regrowth": FitConfig(
        fixed={"slope": DEFAULT_FIXED["slope"], "delay": DEFAULT_FIXED["delay"]},
        log_residuals=True,
    ),
    "free": FitConfig(fixed={"regrowth": 1.0}, log_residuals=True),
}
"""The models compared per series, name → `FitConfig` (see the module docstring)."""

_RSS_FLOOR = 1e-12  # an exact fit (RSS = 0) would give AICc = −∞
_ROW_BUCKET = 32
_CHUNK = 32


def aicc(rss: np.ndarray | float, n_points: np.ndarray | int, n_params: int) -> np.ndarray:
    """AICc of least-squares fits with estimated noise (``K = n_params + 1``); inf where
    undefined (``n ≤ K + 1``). ``rss``: sum of squared residuals; arrays broadcast."""
    n = np.asarray(n_points, float)
    k = n_params + 1
    rss = np.maximum(np.asarray(rss, float), _RSS_FLOOR)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = n * np.log(rss / n) + 2 * k + 2 * k * (k + 1) / (n - k - 1)
    return np.where(n > k + 1, value, np.inf)


@dataclass(frozen=True)
class Selection:
    """Model chosen per series.

    Attributes:
        names: series identifiers.
        candidates: candidate names, in column order of the arrays below.
        n_fitted: ``(series,)`` visits each fit used.
        aicc: ``(series, candidate)`` AICc (inf where undefined or not fitted).
        weights: ``(series, candidate)`` Akaike weights (NaN where no AICc is defined).
        model: ``(series,)`` chosen candidate name (``""``: too few visits for any).
        by_aicc: ``(series,)`` True where AICc chose; False where the fallback did.
        fits: candidate name → `FitResult` of every series under it (leading series axis);
            only candidates that some series could use (AICc defined, or the fallback).
    """

    names: tuple[str, ...]
    candidates: tuple[str, ...]
    n_fitted: np.ndarray
    aicc: np.ndarray
    weights: np.ndarray
    model: tuple[str, ...]
    by_aicc: np.ndarray
    fits: Mapping[str, FitResult]

    def table(self) -> list[dict[str, object]]:
        """One JSON-ready row per series: model, whether AICc chose it, AICc and weights."""
        rows = []
        for i, name in enumerate(self.names):
            row: dict[str, object] = {
                "series": name,
                "model": self.model[i] or None,
                "by_aicc": bool(self.by_aicc[i]),
                "n_fitted": int(self.n_fitted[i]),
            }
            for j, candidate in enumerate(self.candidates):
                a, w = float(self.aicc[i, j]), float(self.weights[i, j])
                row[f"aicc_{candidate}"] = a if np.isfinite(a) else None
                row[f"weight_{candidate}"] = w if np.isfinite(w) else None
            rows.append(row)
        return rows


def select_models(
    series: Series | Sequence[Series] | SeriesBatch,
    *,
    setup: str = "all",
    candidates: Mapping[str, FitConfig] | None = None,
) -> Selection:
    """Fit every candidate to every series (one vmapped call each) and choose by AICc.

    Args:
        series: one series, a list or a padded `SeriesBatch` (days; burden in mm² or ml).
        setup: ``"all"`` fits every visit; ``"train"`` leaves each series' last one out.
        candidates: name → `FitConfig` (default `CANDIDATES`); AICc needs log residuals.
    """
    if setup not in ("all", "train"):
        raise InputError(f"setup must be 'all' or 'train', not {setup!r}")
    candidates = dict(CANDIDATES if candidates is None else candidates)
    if not candidates:
        raise InputError("no candidate models")
    if not all(c.log_residuals for c in candidates.values()):
        raise InputError("AICc compares log-residual fits: use FitConfig(log_residuals=True)")
    if isinstance(series, Series):
        series = [series]
    batch = series if isinstance(series, SeriesBatch) else SeriesBatch.from_series(series)
    weight = batch.mask.astype(float)
    n_fitted = batch.n_points.copy()
    if setup == "train":
        weight[np.arange(len(batch)), n_fitted - 1] = 0.0
        n_fitted = n_fitted - 1
    names = tuple(candidates)
    n_params = np.array([len(candidates[name].fitted) for name in names])
    # Fit a candidate only where it can matter: some series has enough visits for its AICc,
    # or it is the fallback (fewest parameters). Rows are padded to a multiple of
    # `_ROW_BUCKET` so that cohorts of similar size share one compilation.
    fallback = names[int(np.argmin(n_params))]
    rows = np.minimum(np.arange(-(-len(batch) // _ROW_BUCKET) * _ROW_BUCKET), len(batch) - 1)
    fits = {}
    for j, name in enumerate(names):
        if name == fallback or np.any(n_fitted > n_params[j] + 2):
            fit = fit_arrays(
                batch.value[rows],
                batch.time_days[rows],
                weight[rows],
                batch.t_rt_days[rows],
                candidates[name],
            )
            fits[name] = jax.tree.map(lambda leaf: leaf[: len(batch)], fit)
    scores = np.stack(
        [
            np.where(
                np.asarray(fits[name].converged) & (n_fitted >= n_params[j]),
                aicc(2 * np.asarray(fits[name].loss, float), n_fitted, int(n_params[j])),
                np.inf,
            )
            if name in fits
            else np.full(len(batch), np.inf)
            for j, name in enumerate(names)
        ],
        axis=1,
    )
    defined = np.isfinite(scores).any(axis=1)
    best = np.where(defined, np.argmin(scores, axis=1), -1)
    with np.errstate(invalid="ignore"):
        delta = scores - np.min(scores, axis=1, keepdims=True)
        raw = np.where(np.isfinite(delta), np.exp(-0.5 * delta), 0.0)
        weights = np.where(defined[:, None], raw / raw.sum(axis=1, keepdims=True), np.nan)
    order = np.argsort(n_params, kind="stable")  # fallback: fewest parameters that fit
    model = []
    for i in range(len(batch)):
        if defined[i]:
            model.append(names[best[i]])
            continue
        usable = [
            names[j]
            for j in order
            if names[j] in fits
            and n_fitted[i] >= n_params[j]
            and bool(np.asarray(fits[names[j]].converged)[i])
        ]
        model.append(usable[0] if usable else "")
    return Selection(
        names=batch.names,
        candidates=names,
        n_fitted=n_fitted,
        aicc=scores,
        weights=weights,
        model=tuple(model),
        by_aicc=defined,
        fits=fits,
    )


def bootstrap_selected(
    series: Sequence[Series] | SeriesBatch,
    key: PRNGKeyArray,
    selection: Selection,
    config: BootstrapConfig | None = None,
) -> BootstrapResult:
    """Bootstrap every series under the model `select_models` chose for it.

    Series that share a model are bootstrapped in one vmapped call (series ``i`` keeps the key
    ``fold_in(key, i)`` whatever its group); a series with no model (too few visits) gets NaN
    bands, NaN fits and ``n_failed = n_replicates``.

    Args:
        series: the series given to `select_models` (same order).
        key: JAX PRNG key.
        selection: output of `select_models` on these series with the same setup.
        config: bootstrap options; its ``setup`` must match the selection's.
    """
    config = BootstrapConfig() if config is None else config
    batch = series if isinstance(series, SeriesBatch) else SeriesBatch.from_series(series)
    if batch.names != selection.names:
        raise InputError("the selection was made for other series")
    candidates = dict(CANDIDATES)
    model = np.asarray(selection.model)
    parts = []
    for name in selection.candidates:
        index = np.flatnonzero(model == name)
        if index.size == 0:
            continue
        # Groups padded to a multiple of one chunk size (repeating their last series): each
        # model compiles once, whatever the size of its group.
        rows = np.minimum(np.arange(-(-index.size // _CHUNK) * _CHUNK), index.size - 1)
        padded = index[rows]
        subset = SeriesBatch(
            names=tuple(batch.names[i] for i in padded),
            time_days=batch.time_days[padded],
            value=batch.value[padded],
            mask=batch.mask[padded],
            t_rt_days=batch.t_rt_days[padded],
        )
        keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.asarray(padded))
        result = bootstrap_batch(subset, keys, config, candidates[name], chunk_size=_CHUNK)
        result = jax.tree.map(lambda leaf, n=index.size: leaf[:n], result)
        parts.append((index, result))
    if not parts:
        raise InputError("no series has enough visits for any candidate model")
    n_series = len(batch)
    template = dataclasses.replace(parts[0][1], names=batch.names)
    leaves = []
    for position, leaf in enumerate(jax.tree.leaves(template)):
        leaf = np.asarray(leaf)
        fill = np.nan if leaf.dtype.kind == "f" else (False if leaf.dtype.kind == "b" else 0)
        full = np.full((n_series, *leaf.shape[1:]), fill, leaf.dtype)
        for index, result in parts:
            full[index] = np.asarray(jax.tree.leaves(result)[position])
        leaves.append(jnp.asarray(full))
    merged = jax.tree.unflatten(jax.tree.structure(template), leaves)
    # The inputs of series without a model are still the data (for plots and reports).
    last = batch.n_points - 1
    dtype = merged.value.dtype
    n_failed = np.full(n_series, config.n_replicates)
    for index, result in parts:
        n_failed[index] = np.asarray(result.n_failed)
    return dataclasses.replace(
        merged,
        n_failed=jnp.asarray(n_failed, merged.n_failed.dtype),
        time_days=jnp.asarray(batch.time_days, merged.time_days.dtype),
        value=jnp.asarray(batch.value, merged.value.dtype),
        mask=jnp.asarray(batch.mask),
        t_rt_days=jnp.asarray(batch.t_rt_days, merged.t_rt_days.dtype),
        heldout_days=jnp.asarray(batch.time_days[np.arange(n_series), last], dtype),
        heldout_value=jnp.asarray(batch.value[np.arange(n_series), last], dtype),
    )
