"""Posterior products from density draws: statistics, infiltration probability, target volumes."""

from bayestumor.config import DEFAULT_CTV_PROBABILITY as DEFAULT_CTV_PROBABILITY
from bayestumor.config import DEFAULT_THRESHOLD_U as DEFAULT_THRESHOLD_U
from bayestumor.posterior._maps import DEFAULT_QUANTILES as DEFAULT_QUANTILES
from bayestumor.posterior._maps import PosteriorMaps as PosteriorMaps
from bayestumor.posterior._maps import posterior_maps as posterior_maps
from bayestumor.posterior._maps import write_posterior_maps as write_posterior_maps
