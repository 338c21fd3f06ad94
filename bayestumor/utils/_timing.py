"""Wall-clock timing of jitted JAX calls, for benchmarks and model cards."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_seconds(fn: Callable, *args, repeats: int = 5) -> float:
    """Median wall time of `fn(*args)` over `repeats` calls, after one warm-up call (which
    compiles); every result is blocked on, so asynchronous dispatch is not mistaken for speed."""
    import jax  # here: `bayestumor.utils` stays importable without starting JAX

    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - started)
    return statistics.median(times)
