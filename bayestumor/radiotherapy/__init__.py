"""Radiotherapy response of tumour burden: ODE model, least squares, bootstrap and Bayesian bands.

Model of Laslo et al., *Mechanistic learning with guided diffusion models to predict
spatio-temporal brain tumor growth* (arXiv:2509.09610, 2025): exponential growth, then at the RT
start a surviving fraction that keeps growing and a doomed fraction whose rate switches smoothly,
after a delay, to decay. Time in days since the first scan; burden in the user's units (mm², ml).
Independent of the spatial model.
"""

from bayestumor.radiotherapy._bayes import BayesResult, bayes_bands, rt_model
from bayestumor.radiotherapy._bootstrap import BootstrapConfig, BootstrapResult, bootstrap, metrics
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
from bayestumor.radiotherapy._plots import plot_bayes, plot_bootstrap

__all__ = [
    "DEFAULT_FIXED",
    "PARAM_NAMES",
    "BayesResult",
    "BootstrapConfig",
    "BootstrapResult",
    "FitConfig",
    "FitResult",
    "RTParams",
    "Series",
    "SeriesBatch",
    "bands_table",
    "bayes_bands",
    "bootstrap",
    "burden",
    "burden_ode",
    "fit",
    "fit_arrays",
    "fit_many",
    "log_burden",
    "log_cosh",
    "metrics",
    "parameters_table",
    "plot_bayes",
    "plot_bootstrap",
    "read_series_csv",
    "rt_model",
    "start_guesses",
    "write_outputs",
]
