"""The surrogate network: a FiLM-conditioned, depthwise-separable 3D U-Net for XLA-CPU.

Inputs are four channels on a 4 mm voxel grid — white-matter, grey-matter and CSF probabilities
and the PDE's own initial condition (the Gaussian seed blob at its continuous position) — and
the two scale-free growth parameters μ_D = √(D_w T) [mm] and μ_ρ = √(ρ T) [-], which alone
determine the density (see `GrowthParams`). The parameters enter by FiLM (Perez et al. 2018):
every block's features are scaled and shifted by an MLP of (log μ_D, log μ_ρ), as in the
parameter-conditioned U-Net of Weidner et al. (2024); Ezhov et al. (2023) instead append
(D, ρ, T) to an anatomy encoder's code. The seed enters as an image, not as coordinates, so
the network is translation-equivariant, runs on any region whose sides are multiples of 8
voxels, and is differentiable in the seed position through the blob.

Why this shape (measured on the 2-core development CPU, float32): a dense 3×3×3 convolution
8→8 channels at 32³ costs 50 ms in XLA's convolution (NCDHW or NDHWC) and 12 ms written as 27
shifted matrix products, and a standard U-Net of width 16 at 32³ takes 0.39 s per forward pass —
far too slow for NUTS. So the network

- starts with a lossless space-to-depth (32³ × 4 → 16³ × 32: nothing is thrown away) and ends
  with depth-to-space plus one light full-resolution stage, so the heavy layers run on 8× fewer
  voxels (Shi et al. 2016, sub-pixel convolution);
- uses ConvNeXt-style blocks (Liu et al. 2022): a depthwise 3×3×3 convolution written as one
  fused sum of 27 shifted slices, then pointwise (1×1×1) layers as matrix products — ~15× fewer
  operations than dense 3×3×3 convolutions at equal width;
- downsamples by space-to-depth and upsamples by nearest-neighbour repetition (transposed
  convolutions are ~8× slower on XLA-CPU).

Three resolution levels (8, 16, 32 mm voxels at 4 mm input) give a receptive field spanning the
whole 128 mm box. The output is a sigmoid times the habitable mask (wm + gm > 0): the PDE's
density is exactly 0 in CSF and outside the brain.
"""

from __future__ import annotations

import dataclasses
import math

import equinox as eqx
import jax
import jax.numpy as jnp

from bayestumor._custom_types import Array, ArrayLike, Float, PRNGKeyArray

N_INPUT_CHANNELS = 4
"""wm, gm, csf, seed blob."""


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    """Hyperparameters of `SurrogateNet` (stored as JSON next to the weights).

    Attributes:
        widths: feature channels at the 2×, 4× and 8× coarsened levels.
        blocks: ConvNeXt blocks per encoder level (the decoder has one per level).
        fine_channels: channels of the full-resolution output stage.
        film_hidden: hidden units of the FiLM conditioning MLP.
        log_mu_D_range: (low, high) of log μ_D [log mm], to normalise the conditioning.
        log_mu_rho_range: (low, high) of log μ_ρ, to normalise the conditioning.
    """

    widths: tuple[int, int, int] = (24, 48, 96)
    blocks: int = 2
    fine_channels: int = 8
    film_hidden: int = 64
    log_mu_D_range: tuple[float, float] = (0.0, math.log(30.0))
    log_mu_rho_range: tuple[float, float] = (0.0, math.log(8.0))

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_dict(cls, values: dict) -> NetworkConfig:
        """Inverse of `to_dict`."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

    @property
    def multiple(self) -> int:
        """Region sides must be multiples of this many voxels."""
        return 2 ** len(self.widths)


def space_to_depth(x: Float[Array, "*b x y z c"]) -> Float[Array, "*b x/2 y/2 z/2 8*c"]:
    """Fold each 2×2×2 block of voxels into the channel axis (lossless)."""
    *batch, nx, ny, nz, c = x.shape
    x = x.reshape(*batch, nx // 2, 2, ny // 2, 2, nz // 2, 2, c)
    b = len(batch)
    order = (*range(b), b, b + 2, b + 4, b + 1, b + 3, b + 5, b + 6)
    return x.transpose(order).reshape(*batch, nx // 2, ny // 2, nz // 2, 8 * c)


# The argument names its channel axis `c8` (8 × output channels): jaxtyping can evaluate a
# symbolic axis such as "8*c" only once the axes it names are bound, so not in the argument.
def depth_to_space(x: Float[Array, "*b x y z c8"]) -> Float[Array, "*b 2*x 2*y 2*z c8//8"]:
    """Inverse of `space_to_depth`."""
    *batch, nx, ny, nz, c8 = x.shape
    c = c8 // 8
    x = x.reshape(*batch, nx, ny, nz, 2, 2, 2, c)
    b = len(batch)
    order = (*range(b), b, b + 3, b + 1, b + 4, b + 2, b + 5, b + 6)
    return x.transpose(order).reshape(*batch, 2 * nx, 2 * ny, 2 * nz, c)


def upsample(x: Float[Array, "*b x y z c"]) -> Float[Array, "*b 2*x 2*y 2*z c"]:
    """Nearest-neighbour ×2 upsampling."""
    for axis in (-4, -3, -2):
        x = jnp.repeat(x, 2, axis=axis)
    return x


def _blur3(x: Float[ArrayLike, "*b x y z c"]) -> Float[Array, "*b x y z c"]:
    """Separable [1, 2, 1] / 4 smoothing along the three spatial axes, zero padding."""
    *batch, nx, ny, nz, _ = x.shape
    g = jnp.pad(x, [(0, 0)] * len(batch) + [(1, 1), (1, 1), (1, 1), (0, 0)])
    weights = (0.25, 0.5, 0.25)
    total = 0.0
    # One fused sum of 27 shifted slices (read from cache), rather than three passes over memory.
    for i in range(3):
        for j in range(3):
            for k in range(3):
                w = weights[i] * weights[j] * weights[k]
                total = total + w * g[..., i : i + nx, j : j + ny, k : k + nz, :]
    return total


@jax.custom_vjp
def blur(x: Float[ArrayLike, "*b x y z c"]) -> Float[Array, "*b x y z c"]:
    """Fixed 3×3×3 binomial smoothing of every channel (zero padding at the region's faces).

    The network's only spatial operator. It is symmetric under the cube's flips and axis
    permutations, like the isotropic diffusion it emulates, and self-adjoint, so its VJP is
    itself (written out: JAX's automatic transpose of the slices is ~5× slower on the CPU).
    A learned depthwise kernel was tried first: its kernel gradient (27 reductions over the
    volume) made a training step 16× slower than the forward pass on XLA-CPU.
    """
    return _blur3(x)


def _blur_fwd(x):
    return _blur3(x), None


def _blur_bwd(_, cotangent):
    return (_blur3(cotangent),)


blur.defvjp(_blur_fwd, _blur_bwd)


class _Pointwise(eqx.Module):
    """1×1×1 convolution (a dense layer on the channel axis)."""

    weight: Array
    bias: Array

    def __init__(self, c_in: int, c_out: int, key: PRNGKeyArray, scale: float = 1.0):
        self.weight = scale * jax.random.normal(key, (c_in, c_out)) / math.sqrt(c_in)
        self.bias = jnp.zeros(c_out)

    def __call__(self, x: Array) -> Array:
        return x @ self.weight + self.bias


class _Block(eqx.Module):
    """Residual block: [h, blur(h), blur²(h)] → pointwise → FiLM → GELU → pointwise, + h.

    Like one step of an explicit PDE integrator whose update rule is learned: local values and
    their smoothed neighbourhood (a discrete Laplacian is their difference) mixed per voxel.
    """

    mix: _Pointwise
    out: _Pointwise

    def __init__(self, channels: int, key: PRNGKeyArray):
        k2, k3 = jax.random.split(key)
        self.mix = _Pointwise(3 * channels, channels, k2)
        self.out = _Pointwise(channels, channels, k3, scale=0.1)

    def __call__(self, x: Array, scale: Array, shift: Array) -> Array:
        smooth = blur(x)
        h = self.mix(jnp.concatenate([x, smooth, blur(smooth)], axis=-1))
        h = jax.nn.gelu(h * (1.0 + scale) + shift)
        return x + self.out(h)


class SurrogateNet(eqx.Module):
    """FiLM U-Net mapping (anatomy, seed blob, μ_D, μ_ρ) to tumour-cell density (final class).

    Call with ``inputs`` of shape (..., x, y, z, 4) — wm, gm, csf and the seed blob on a 4 mm grid,
    sides multiples of `NetworkConfig.multiple` — and the scalars μ_D [mm] and μ_ρ [-]; returns
    the density (..., x, y, z) in [0, 1], exactly 0 where wm + gm = 0. Leading batch axes are
    handled natively (one large matrix product per layer, faster than `vmap` on the CPU).
    """

    stems: tuple[_Pointwise, ...]
    encoders: tuple[tuple[_Block, ...], ...]
    merges: tuple[_Pointwise, ...]
    decoders: tuple[_Block, ...]
    to_fine: _Pointwise
    fine_mix: _Pointwise
    head: _Pointwise
    film: eqx.nn.MLP
    config: NetworkConfig = eqx.field(static=True)

    def __init__(self, config: NetworkConfig, key: PRNGKeyArray):
        w = config.widths
        keys = iter(jax.random.split(key, 64))
        c_in = 8 * N_INPUT_CHANNELS
        stems, encoders = [], []
        for width in w:
            stems.append(_Pointwise(c_in, width, next(keys)))
            encoders.append(tuple(_Block(width, next(keys)) for _ in range(config.blocks)))
            c_in = 8 * width
        merges, decoders = [], []
        for level in reversed(range(len(w) - 1)):
            merges.append(_Pointwise(w[level + 1] + w[level], w[level], next(keys)))
            decoders.append(_Block(w[level], next(keys)))
        self.stems, self.encoders = tuple(stems), tuple(encoders)
        self.merges, self.decoders = tuple(merges), tuple(decoders)
        fine = config.fine_channels
        self.to_fine = _Pointwise(w[0], 8 * fine, next(keys))
        c_fine = fine + N_INPUT_CHANNELS
        self.fine_mix = _Pointwise(2 * c_fine, fine, next(keys))
        self.head = _Pointwise(fine, 1, next(keys))
        film = eqx.nn.MLP(
            2, 2 * self._n_modulated(config), config.film_hidden, depth=2,
            activation=jax.nn.gelu, key=next(keys),
        )  # fmt: skip
        # Start as an unmodulated network: zero the FiLM output layer.
        last = film.layers[-1]
        film = eqx.tree_at(lambda m: m.layers[-1].weight, film, jnp.zeros_like(last.weight))
        self.film = eqx.tree_at(lambda m: m.layers[-1].bias, film, jnp.zeros_like(last.bias))
        self.config = config

    @staticmethod
    def _n_modulated(config: NetworkConfig) -> int:
        return config.blocks * sum(config.widths) + sum(config.widths[:-1])

    def conditioning(self, mu_D: Array, mu_rho: Array) -> Float[Array, "*b 2"]:
        """(log μ_D, log μ_ρ) rescaled to [−1, 1] over the training ranges."""
        lo_d, hi_d = self.config.log_mu_D_range
        lo_r, hi_r = self.config.log_mu_rho_range
        z_d = 2.0 * (jnp.log(mu_D) - lo_d) / (hi_d - lo_d) - 1.0
        z_r = 2.0 * (jnp.log(mu_rho) - lo_r) / (hi_r - lo_r) - 1.0
        return jnp.stack([z_d, z_r], axis=-1)

    def logits(
        self,
        inputs: Float[Array, "*b x y z 4"],
        mu_D: Float[Array, "*b"],
        mu_rho: Float[Array, "*b"],
    ) -> Float[Array, "*b x y z"]:
        """Pre-sigmoid output (before masking); leading batch axes are processed natively."""
        conditioning = self.conditioning(jnp.asarray(mu_D), jnp.asarray(mu_rho))
        film = jnp.vectorize(self.film, signature="(2)->(m)")(conditioning)
        film = film[..., None, None, None, :]  # broadcast over the voxels
        offset = 0

        def modulation(width: int) -> tuple[Array, Array]:
            nonlocal offset
            scale = film[..., offset : offset + width]
            shift = film[..., offset + width : offset + 2 * width]
            offset += 2 * width
            return scale, shift

        skips = []
        h = inputs
        for stem, blocks in zip(self.stems, self.encoders, strict=True):
            h = stem(space_to_depth(h))
            for block in blocks:
                h = block(h, *modulation(h.shape[-1]))
            skips.append(h)
        for index, (merge, block) in enumerate(zip(self.merges, self.decoders, strict=True)):
            skip = skips[len(skips) - 2 - index]
            h = merge(jnp.concatenate([upsample(h), skip], axis=-1))
            h = block(h, *modulation(h.shape[-1]))
        fine = depth_to_space(self.to_fine(h))
        fine = jnp.concatenate([fine, inputs], axis=-1)
        fine = jax.nn.gelu(self.fine_mix(jnp.concatenate([fine, blur(fine)], axis=-1)))
        return self.head(fine)[..., 0]

    def __call__(
        self,
        inputs: Float[Array, "*b x y z 4"],
        mu_D: Float[Array, "*b"],
        mu_rho: Float[Array, "*b"],
    ) -> Float[Array, "*b x y z"]:
        habitable = (inputs[..., 0] + inputs[..., 1]) > 0
        return jnp.where(habitable, jax.nn.sigmoid(self.logits(inputs, mu_D, mu_rho)), 0.0)


def count_parameters(net: SurrogateNet) -> int:
    """Number of trainable scalars."""
    return sum(x.size for x in jax.tree.leaves(eqx.filter(net, eqx.is_array)))
