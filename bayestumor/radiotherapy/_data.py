"""Validated burden time series (one or many) for the radiotherapy model."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bayestumor.errors import InputError


@dataclass(frozen=True)
class Series:
    """One burden time series (a patient, a lesion or a slice), validated on construction.

    Attributes:
        name: identifier used in outputs.
        time_days: visit times in days since the first scan (≥ 0, strictly increasing).
        value: burden at each visit in the user's units (mm² or ml), > 0.
        t_rt_days: RT start in days on the same time axis.
        source: file the series was read from, named in error messages (optional).
    """

    name: str
    time_days: np.ndarray
    value: np.ndarray
    # None (no RT start in the data) is accepted here and rejected by validation with a
    # message; after construction it is always a float.
    t_rt_days: float | None
    source: Path | None = None

    def __post_init__(self) -> None:
        where = f"series {self.name!r}: "
        time = np.asarray(self.time_days, dtype=np.float64)
        value = np.asarray(self.value, dtype=np.float64)
        if time.ndim != 1 or value.shape != time.shape:
            raise InputError(
                where + f"time_days {time.shape} and value {value.shape} must be 1-D of one length",
                self.source,
            )
        if self.t_rt_days is None or not np.isfinite(self.t_rt_days):
            raise InputError(where + "missing RT start (t_rt_days)", self.source)
        if not (np.all(np.isfinite(time)) and np.all(np.isfinite(value))):
            raise InputError(where + "time_days and value must be finite numbers", self.source)
        if np.any(time < 0):
            raise InputError(
                where + "time_days must be ≥ 0 (days since the first scan)", self.source
            )
        steps = np.diff(time)
        if np.any(steps == 0):
            duplicate = time[1:][steps == 0][0]
            raise InputError(where + f"duplicate time {duplicate:g} days", self.source)
        if np.any(steps < 0):
            raise InputError(where + "time_days are not sorted in increasing order", self.source)
        if np.any(value <= 0):
            raise InputError(
                where + "values must be positive burdens (found zero or negative)", self.source
            )
        object.__setattr__(self, "time_days", time)
        object.__setattr__(self, "value", value)
        object.__setattr__(self, "t_rt_days", float(self.t_rt_days))

    def __len__(self) -> int:
        return self.time_days.shape[0]


@dataclass(frozen=True)
class SeriesBatch:
    """Many series padded to one length, for one vmapped call.

    Padding repeats each series' last visit with ``mask = False`` (weight 0 in every fit).

    Attributes:
        names: series identifiers, length ``n_series``.
        time_days: ``(n_series, n_max)`` visit times, days since the first scan.
        value: ``(n_series, n_max)`` burdens, user units.
        mask: ``(n_series, n_max)`` True on real visits.
        t_rt_days: ``(n_series,)`` RT starts, days.
    """

    names: tuple[str, ...]
    time_days: np.ndarray
    value: np.ndarray
    mask: np.ndarray
    t_rt_days: np.ndarray

    @classmethod
    def from_series(cls, series: Sequence[Series]) -> SeriesBatch:
        """Pad and stack validated series."""
        if not series:
            raise InputError("no series given")
        n_max = max(len(s) for s in series)
        pad = [n_max - len(s) for s in series]
        return cls(
            names=tuple(s.name for s in series),
            time_days=np.stack(
                [np.pad(s.time_days, (0, p), mode="edge") for s, p in zip(series, pad, strict=True)]
            ),
            value=np.stack(
                [np.pad(s.value, (0, p), mode="edge") for s, p in zip(series, pad, strict=True)]
            ),
            mask=np.stack([np.arange(n_max) < len(s) for s in series]),
            t_rt_days=np.array([s.t_rt_days for s in series]),
        )

    def __len__(self) -> int:
        return len(self.names)

    @property
    def n_points(self) -> np.ndarray:
        """Number of real visits per series."""
        return self.mask.sum(axis=1)
