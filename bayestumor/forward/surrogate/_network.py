"""The surrogate network: a FiLM-conditioned 3D U-Net with nearest-neighbour upsampling.

Inputs are four channels on a 4 mm voxel grid — white matter, grey matter and CSF
probabilities and the PDE's own initial condition (the Gaussian seed blob at its continuous
position) — plus the two scale-free growth parameters μ_D = √(D_w T) [mm] and μ_ρ = √(ρ T) [-],
which alone determine the density (see `GrowthParams`). The parameters enter by FiLM
(Perez et al. 2018): every convolution block's features are scaled and shifted by an MLP of
(log μ_D, log μ_ρ), as in the conditioned U-Net of Weidner et al. (2024). The seed enters as an
image, not as coordinates, so the network is translation-equivariant, works on any region of
interest whose sides are multiples of 8 voxels, and is differentiable in the seed position
through the blob. Upsampling is nearest-neighbour + convolution because `ConvTranspose3d` is
about 8× slower on XLA-CPU (measured, docs/DESIGN). The output is a sigmoid times the habitable
mask: the PDE's density is exactly 0 in CSF and outside the brain.
"""

from __future__ import annotations

import dataclasses
import math

import equinox as eqx
import jax
import jax.numpy as jnp

from bayestumor._custom_types import Array, Float, PRNGKeyArray

N_INPUT_CHANNELS = 4
"""wm, gm, csf, seed blob."""


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    """Hyperparameters of `SurrogateNet` (stored as JSON next to the weights).

    Attributes:
        widths: feature channels per resolution level, finest first; the grid is halved
            between levels, so region sides must be multiples of 2^(len(widths) − 1).
        film_hidden: hidden units of the FiLM conditioning MLP.
        log_mu_D_range: (low, high) of log μ_D [log mm] used to normalise the conditioning.
        log_mu_rho_range: (low, high) of log μ_ρ used to normalise the conditioning.
    """

    widths: tuple[int, ...] = (8, 16, 32, 48)
    film_hidden: int = 32
    log_mu_D_range: tuple[float, float] = (0.0, math.log(30.0))
    log_mu_rho_range: tuple[float, float] = (0.0, math.log(8.0))

    def to_dict(self) -> dict:
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_dict(cls, values: dict) -> NetworkConfig:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

    @property
    def multiple(self) -> int:
        """Region sides must be multiples of this many voxels."""
        return 2 ** (len(self.widths) - 1)


class _Block(eqx.Module):
    """Two 3×3×3 convolutions with a FiLM modulation and GELU in between."""

    conv1: eqx.nn.Conv3d
    conv2: eqx.nn.Conv3d

    def __init__(self, c_in: int, c_out: int, key: PRNGKeyArray):
        k1, k2 = jax.random.split(key)
        self.conv1 = eqx.nn.Conv3d(c_in, c_out, 3, padding=1, key=k1)
        self.conv2 = eqx.nn.Conv3d(c_out, c_out, 3, padding=1, key=k2)

    def __call__(self, x: Array, scale: Array, shift: Array) -> Array:
        h = jax.nn.gelu(self.conv1(x))
        h = h * (1.0 + scale[:, None, None, None]) + shift[:, None, None, None]
        return jax.nn.gelu(self.conv2(h))


def _downsample(x: Array) -> Array:
    """2×2×2 average pooling of a (c, x, y, z) array."""
    c, nx, ny, nz = x.shape
    return x.reshape(c, nx // 2, 2, ny // 2, 2, nz // 2, 2).mean(axis=(2, 4, 6))


def _upsample(x: Array) -> Array:
    """Nearest-neighbour ×2 upsampling of a (c, x, y, z) array."""
    for axis in (1, 2, 3):
        x = jnp.repeat(x, 2, axis=axis)
    return x


class SurrogateNet(eqx.Module):
    """FiLM U-Net mapping (anatomy, seed blob, μ_D, μ_ρ) to tumour-cell density (final class).

    Call with ``inputs`` of shape (4, x, y, z) — wm, gm, csf and the seed blob on a 4 mm grid,
    sides multiples of `NetworkConfig.multiple` — and the scalars μ_D [mm] and μ_ρ [-]; returns
    the density (x, y, z) in [0, 1], zero where wm + gm = 0.
    """

    encoders: tuple[_Block, ...]
    decoders: tuple[_Block, ...]
    head: eqx.nn.Conv3d
    film: eqx.nn.MLP
    config: NetworkConfig = eqx.field(static=True)

    def __init__(self, config: NetworkConfig, key: PRNGKeyArray):
        widths = config.widths
        keys = jax.random.split(key, 2 * len(widths) + 2)
        encoders, decoders = [], []
        c_in = N_INPUT_CHANNELS
        for level, width in enumerate(widths):
            encoders.append(_Block(c_in, width, keys[level]))
            c_in = width
        for level in reversed(range(len(widths) - 1)):
            decoders.append(
                _Block(widths[level + 1] + widths[level], widths[level], keys[len(widths) + level])
            )
        self.encoders = tuple(encoders)
        self.decoders = tuple(decoders)
        self.head = eqx.nn.Conv3d(widths[0], 1, 1, key=keys[-2])
        n_film = 2 * (sum(widths) + sum(widths[:-1]))
        film = eqx.nn.MLP(
            2, n_film, config.film_hidden, depth=2, activation=jax.nn.gelu, key=keys[-1]
        )
        # Start as an unmodulated U-Net: zero the last FiLM layer.
        film = eqx.tree_at(
            lambda m: m.layers[-1].weight, film, jnp.zeros_like(film.layers[-1].weight)
        )
        self.film = eqx.tree_at(
            lambda m: m.layers[-1].bias, film, jnp.zeros_like(film.layers[-1].bias)
        )
        self.config = config

    def conditioning(self, mu_D: Array, mu_rho: Array) -> Array:
        """(log μ_D, log μ_ρ) rescaled to [−1, 1] over the training ranges, shape (2,)."""
        lo_d, hi_d = self.config.log_mu_D_range
        lo_r, hi_r = self.config.log_mu_rho_range
        z_d = 2.0 * (jnp.log(mu_D) - lo_d) / (hi_d - lo_d) - 1.0
        z_r = 2.0 * (jnp.log(mu_rho) - lo_r) / (hi_r - lo_r) - 1.0
        return jnp.stack([z_d, z_r])

    def __call__(
        self, inputs: Float[Array, "4 x y z"], mu_D: Float[Array, ""], mu_rho: Float[Array, ""]
    ) -> Float[Array, "x y z"]:
        widths = self.config.widths
        film = self.film(self.conditioning(mu_D, mu_rho))
        chunks = []
        for width in (*widths, *reversed(widths[:-1])):
            chunks.append((film[:width], film[width : 2 * width]))
            film = film[2 * width :]
        skips = []
        h = inputs
        for level, block in enumerate(self.encoders):
            if level > 0:
                h = _downsample(h)
            h = block(h, *chunks[level])
            skips.append(h)
        for index, block in enumerate(self.decoders):
            level = len(widths) - 2 - index
            h = jnp.concatenate([_upsample(h), skips[level]], axis=0)
            h = block(h, *chunks[len(widths) + index])
        logits = self.head(h)[0]
        habitable = (inputs[0] + inputs[1]) > 0
        return jnp.where(habitable, jax.nn.sigmoid(logits), 0.0)
