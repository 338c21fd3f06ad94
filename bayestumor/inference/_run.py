"""What every sampler returns before it is turned into an ArviZ DataTree."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np


class SamplerRun(NamedTuple):
    """Raw output of one sampler.

    Attributes:
        sampler: ``"nuts"``, ``"blackjax-nuts"`` or ``"smc"``.
        positions: unconstrained draws per sample site, each (chain, draw).
        sample_stats: per-draw statistics, each (chain, draw) (e.g. ``diverging``,
            ``n_steps``, ``acceptance_rate``, ``step_size``, ``lp``).
        info: sampler-level facts (JSON-ready), e.g. the SMC tempering schedule.
        gradient_evaluations: gradients of the log density computed, warm-up included.
        density_evaluations: log-density evaluations without gradient (SMC tempering).
        seconds: wall time of sampling (warm-up included, compilation included).
    """

    sampler: str
    positions: dict[str, np.ndarray]
    sample_stats: dict[str, np.ndarray]
    info: dict[str, Any]
    gradient_evaluations: int
    density_evaluations: int
    seconds: float
