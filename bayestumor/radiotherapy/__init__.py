"""Radiotherapy response of tumour burden: ODE model, least squares, bootstrap and Bayesian bands.

Model of Laslo et al., *Mechanistic learning with guided diffusion models to predict
spatio-temporal brain tumor growth* (arXiv:2509.09610, 2025): exponential growth, then at the RT
start a surviving fraction that keeps growing and a doomed fraction whose rate switches smoothly,
after a delay, to decay (``slope`` is a rate in 1/day, not a time scale: see `burden`'s module notes;
an optional ``regrowth`` ratio for the survivors). Time in days since the first scan; burden in
the user's units (mm², ml). Independent of the spatial model.

Defaults, chosen on the synthetic cohort of `synthetic_cohort` by ``benchmarks/radiotherapy.py``
(numbers in ``docs/api/radiotherapy.md``): forecasts and bands come from `pooled_bands`, a
hierarchical NumPyro model over all series (partial pooling of every shape parameter, NUTS,
posterior-predictive bands) — per-series least squares cannot fit the series with three fitted
visits and its bootstrap bands under-cover held-out visits; the paper's bootstrap stays beside
it, with each series' model chosen by AICc (`select_models`, `bootstrap_selected`).
`forecast_report` scores held-out forecasts (nRMSE, band coverage, calibration table).

Pieces: `RTParams`/`burden` (model), `fit`/`fit_many` (least squares), `bootstrap`,
`select_models`, `pooled_bands`, `bayes_bands` (one series), `forecast_report`,
`synthetic_cohort`, `read_series_csv`/`write_outputs`, plots.
"""

from bayestumor.radiotherapy._bayes import BayesResult, bayes_bands, rt_model
from bayestumor.radiotherapy._bootstrap import (
    BootstrapConfig,
    BootstrapResult,
    bootstrap,
    bootstrap_batch,
    metrics,
)
from bayestumor.radiotherapy._data import Series, SeriesBatch
from bayestumor.radiotherapy._fit import (
    DEFAULT_FIXED,
    FitConfig,
    FitResult,
    fit,
    fit_arrays,
    fit_many,
    start_guesses,
)
from bayestumor.radiotherapy._io import (
    bands_table,
    parameters_table,
    read_series_csv,
    write_outputs,
)
from bayestumor.radiotherapy._ode import (
    PARAM_NAMES,
    RTParams,
    burden,
    burden_ode,
    log_burden,
    log_cosh,
)
from bayestumor.radiotherapy._plots import plot_bayes, plot_bootstrap, plot_pooled
from bayestumor.radiotherapy._pooled import (
    DEFAULT_LEVELS,
    POOLED_NAMES,
    PooledConfig,
    PooledResult,
    cohort_model,
    pooled_bands,
)
from bayestumor.radiotherapy._select import (
    CANDIDATES,
    Selection,
    aicc,
    bootstrap_selected,
    select_models,
)
from bayestumor.radiotherapy._synthetic import (
    DEFAULT_MIX,
    MECHANISMS,
    PROGRESSION_FACTOR,
    SyntheticCohort,
    synthetic_cohort,
)
from bayestumor.radiotherapy._validation import (
    ForecastReport,
    clopper_pearson,
    forecast_report,
    json_ready,
)

__all__ = [
    "CANDIDATES",
    "DEFAULT_FIXED",
    "DEFAULT_LEVELS",
    "DEFAULT_MIX",
    "MECHANISMS",
    "PARAM_NAMES",
    "POOLED_NAMES",
    "PROGRESSION_FACTOR",
    "BayesResult",
    "BootstrapConfig",
    "BootstrapResult",
    "FitConfig",
    "FitResult",
    "ForecastReport",
    "PooledConfig",
    "PooledResult",
    "RTParams",
    "Selection",
    "Series",
    "SeriesBatch",
    "SyntheticCohort",
    "aicc",
    "bands_table",
    "bayes_bands",
    "bootstrap",
    "bootstrap_batch",
    "bootstrap_selected",
    "burden",
    "burden_ode",
    "clopper_pearson",
    "cohort_model",
    "fit",
    "fit_arrays",
    "fit_many",
    "forecast_report",
    "json_ready",
    "log_burden",
    "log_cosh",
    "metrics",
    "parameters_table",
    "plot_bayes",
    "plot_bootstrap",
    "plot_pooled",
    "pooled_bands",
    "read_series_csv",
    "rt_model",
    "select_models",
    "start_guesses",
    "synthetic_cohort",
    "write_outputs",
]
