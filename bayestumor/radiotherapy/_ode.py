"""Tumour-burden ODE with a radiotherapy (RT) response: closed form and diffrax solution.

Model (Laslo et al., *Mechanistic learning with guided diffusion models to predict
spatio-temporal brain tumor growth*, arXiv:2509.09610, 2025; paediatric diffuse midline glioma):
before the RT start ``t_RT`` the burden grows exponentially, ``A(t) = A₀ e^{λt}``. At ``t_RT`` it
splits into a surviving fraction ``S`` that keeps growing (at ``λ`` in the paper; at
``regrowth · λ`` here, ``regrowth = 1`` by default, see below) and a doomed fraction ``1 − S``
whose rate is

    λ'(t) = −λ_decay · tanh(slope · (t − t_RT − delay)),

a smooth, delayed switch from growth (``t < t_RT + delay``, where tanh < 0) to decay at up to
``λ_decay``. The burden is ``A = A_living + A_doomed``.

**The transition uses a rate, not a time scale.** The paper's text writes
``tanh((t − t_RT − δ) · slope)`` and its Algorithm 1 ``tanh((t − t_RT − δ) / slope)``; here
``slope`` is a *rate* in 1/day (the text's form), and ``1 / slope`` is the time scale of the
switch (tanh runs from −0.76 to 0.76 within ``2 / slope`` days). Why: (i) with the module's
value 0.2, the rate reading gives a switch of about ten days, as a response that builds over a
course of fractions does, whereas the time-scale reading would make it a 0.2-day step; (ii) the
closed form of the doomed compartment, ``−(λ_decay / slope) · log cosh(slope · x)``, is smooth
in the rate and reaches the abrupt-switch limit continuously as ``slope → ∞``; (iii) every other
parameter of the model is a rate in 1/day, so priors and start ranges share one scale. Users of
the time-scale convention pass ``slope = 1 / τ``.

**Own regrowth rate.** ``regrowth`` (dimensionless, > 0) multiplies ``λ`` for the surviving
fraction after ``t_RT``: ``A_living(t) = S A₀ e^{λ t_RT} e^{regrowth · λ (t − t_RT)}``. At the
default ``regrowth = 1`` (fixed unless a model fits it, see `FitConfig` and `select_models`) this
is the paper's model exactly; a free ``regrowth`` lets the cells that survive regrow faster or
slower than the untreated tumour grew (``regrowth → 0``: a plateau).

Units: time ``t`` in days since the first scan (``A₀`` is the burden at ``t = 0``); burden in the
user's units (mm² for areas, ml or mm³ for volumes), carried through unchanged; rates in 1/day;
``delay`` in days; ``S`` dimensionless.
"""

from __future__ import annotations

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp

from bayestumor._custom_types import Array, ArrayLike, Float

PARAM_NAMES = ("A0", "lam", "S", "lam_decay", "slope", "delay", "regrowth")
"""Model parameters, in the order of the unconstrained vector (see `RTParams`)."""


class RTParams(eqx.Module):
    """Parameters of the RT-response burden model, on their natural scales (a pytree).

    Every field may carry leading batch dimensions (``vmap`` over them).

    Attributes:
        A0: burden at ``t = 0`` (days since first scan), user units (mm² or ml); > 0.
        lam: growth rate λ before RT and of the surviving fraction, 1/day; > 0.
        S: surviving fraction at the RT start, in (0, 1).
        lam_decay: largest decay rate of the doomed fraction, 1/day; > 0.
        slope: steepness of the tanh switch, 1/day; > 0.
        delay: days after the RT start at which the doomed fraction stops growing; > 0.
        regrowth: growth rate of the surviving fraction after ``t_RT`` relative to ``λ``
            (dimensionless, > 0); 1 (the default) is the paper's model.
    """

    A0: Float[ArrayLike, "*batch"]
    lam: Float[ArrayLike, "*batch"]
    S: Float[ArrayLike, "*batch"]
    lam_decay: Float[ArrayLike, "*batch"]
    slope: Float[ArrayLike, "*batch"]
    delay: Float[ArrayLike, "*batch"]
    # "..." (not "*batch"): the default 1.0 broadcasts against batched fields.
    regrowth: Float[ArrayLike, "..."] = 1.0

    def to_unconstrained(self) -> Float[Array, "*batch 7"]:
        """Stack into ``[log A0, log λ, logit S, log λ_decay, log slope, log delay,
        log regrowth]``."""
        S = jnp.asarray(self.S)
        shape = jnp.broadcast_shapes(*(jnp.shape(getattr(self, n)) for n in PARAM_NAMES))
        return jnp.stack(
            [
                jnp.broadcast_to(v, shape)
                for v in (
                    jnp.log(self.A0),
                    jnp.log(self.lam),
                    jnp.log(S) - jnp.log1p(-S),
                    jnp.log(self.lam_decay),
                    jnp.log(self.slope),
                    jnp.log(self.delay),
                    jnp.log(jnp.asarray(self.regrowth, S.dtype)),
                )
            ],
            axis=-1,
        )

    @classmethod
    def from_unconstrained(cls, theta: Float[ArrayLike, "*batch 7"]) -> RTParams:
        """Inverse of `to_unconstrained`."""
        theta = jnp.asarray(theta)
        A0, lam, S, lam_decay, slope, delay, regrowth = jnp.moveaxis(theta, -1, 0)
        return cls(
            A0=jnp.exp(A0),
            lam=jnp.exp(lam),
            S=jax.nn.sigmoid(S),
            lam_decay=jnp.exp(lam_decay),
            slope=jnp.exp(slope),
            delay=jnp.exp(delay),
            regrowth=jnp.exp(regrowth),
        )


def log_cosh(x: Float[ArrayLike, "*shape"]) -> Float[Array, "*shape"]:
    """``log(cosh(x))`` without overflow: ``|x| + log1p(exp(−2|x|)) − log 2``."""
    abs_x = jnp.abs(x)
    return abs_x + jnp.log1p(jnp.exp(-2.0 * abs_x)) - jnp.log(2.0).astype(abs_x.dtype)


def doomed_log_growth(
    params: RTParams, t_days: Float[ArrayLike, "*shape"], t_rt_days: Float[ArrayLike, ""]
) -> Float[Array, "*shape"]:
    """∫ λ'(τ) dτ from ``t_RT`` to ``t`` (≥ t_RT) for the doomed fraction, dimensionless.

    Uses ∫ tanh(s(τ − c)) dτ = log cosh(s(τ − c)) / s with ``c = t_RT + delay``.
    """
    c = t_rt_days + params.delay
    return -(params.lam_decay / params.slope) * (
        log_cosh(params.slope * (t_days - c)) - log_cosh(params.slope * (t_rt_days - c))
    )


def log_burden(
    params: RTParams, t_days: Float[ArrayLike, " n"], t_rt_days: Float[ArrayLike, ""]
) -> Float[Array, " n"]:
    """Closed-form log burden ``log A(t)`` (log of user units) at times ``t_days`` (days).

    Exact solution of `burden_ode`; computed in log space so that fractions near 0 or 1 and
    long horizons stay finite in float32.
    """
    t = jnp.asarray(t_days)
    S_logit = jnp.log(params.S) - jnp.log1p(-params.S)
    after = jnp.maximum(t, t_rt_days)
    log_living = (
        jnp.log(params.A0)
        + params.lam * jnp.minimum(t, t_rt_days)
        + params.regrowth * params.lam * (after - t_rt_days)
        + jax.nn.log_sigmoid(S_logit)
    )
    log_doomed = (
        jnp.log(params.A0)
        + params.lam * jnp.minimum(t, t_rt_days)
        + jax.nn.log_sigmoid(-S_logit)
        + doomed_log_growth(params, after, t_rt_days)
    )
    # Before t_RT both compartments grow at λ, so their sum is A₀e^{λt} exactly.
    return jnp.logaddexp(log_living, log_doomed)


def burden(
    params: RTParams, t_days: Float[ArrayLike, " n"], t_rt_days: Float[ArrayLike, ""]
) -> Float[Array, " n"]:
    """Closed-form burden ``A(t)`` (user units) at times ``t_days`` (days since first scan)."""
    return jnp.exp(log_burden(params, t_days, t_rt_days))


def _vector_field(t: Array, y: Array, args: tuple[RTParams, Array]) -> Array:
    params, t_rt = args
    doomed_rate = jnp.where(
        t < t_rt, params.lam, -params.lam_decay * jnp.tanh(params.slope * (t - t_rt - params.delay))
    )
    living_rate = jnp.where(t < t_rt, params.lam, params.regrowth * params.lam)
    return jnp.stack([living_rate * y[0], doomed_rate * y[1]])


def burden_ode(
    params: RTParams,
    t_days: Float[ArrayLike, " n"],
    t_rt_days: Float[ArrayLike, ""],
    *,
    rtol: float = 1e-6,
    atol: float = 1e-9,
    max_steps: int = 4096,
    adjoint: diffrax.AbstractAdjoint | None = None,
) -> Float[Array, "n 2"]:
    """Solve the two-compartment ODE with diffrax; returns ``(A_living, A_doomed)`` per time.

    ``dA_living/dt = λ A_living``; ``dA_doomed/dt = λ A_doomed`` before ``t_RT`` and
    ``λ'(t) A_doomed`` after. Because both compartments grow at ``λ`` before the RT start,
    splitting ``A₀`` into ``(S A₀, (1 − S) A₀)`` at ``t = 0`` is the same as splitting at
    ``t_RT``. The rate of the doomed compartment jumps at ``t_RT``; the solver is told so
    (``jump_ts``). Tsit5 with a PID controller; tolerances are relative to the burden.

    Args:
        params: model parameters (scalars).
        t_days: sorted output times, days since the first scan, all ≥ 0.
        t_rt_days: RT start, days since the first scan.
        rtol, atol: tolerances of the step-size controller (``atol`` is scaled by ``A₀``).
        max_steps: step budget of the solver.
        adjoint: diffrax adjoint; default `diffrax.ForwardMode` (forward-mode derivatives, as
            Levenberg–Marquardt's Jacobians need; use `RecursiveCheckpointAdjoint` for
            reverse mode).
    """
    t = jnp.asarray(t_days)
    dtype = t.dtype
    t_rt = jnp.asarray(t_rt_days, dtype)
    y0 = jnp.stack([params.S * params.A0, (1.0 - params.S) * params.A0]).astype(dtype)
    controller = diffrax.ClipStepSizeController(
        diffrax.PIDController(rtol=rtol, atol=atol * params.A0), jump_ts=t_rt[None]
    )
    solution = diffrax.diffeqsolve(
        diffrax.ODETerm(_vector_field),
        diffrax.Tsit5(),
        t0=jnp.zeros((), dtype),
        t1=t[-1],
        dt0=None,
        y0=y0,
        args=(params, t_rt),
        saveat=diffrax.SaveAt(ts=t),
        stepsize_controller=controller,
        max_steps=max_steps,
        adjoint=diffrax.ForwardMode() if adjoint is None else adjoint,
    )
    return solution.ys
