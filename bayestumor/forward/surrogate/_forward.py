"""`SurrogateForward`: the trained network as a drop-in forward map, and its on-disk format.

A shipped model is a folder ``models/<name>/`` holding

- ``surrogate.eqx``: the network's leaves (`equinox.tree_serialise_leaves`; no pickle);
- ``hyperparameters.json``: format tag, `NetworkConfig`, grid spacing, input channels, the
  training ranges of μ_D and μ_ρ and the parameter count;
- ``training_config.json``, ``training_record.json``, ``accuracy.json``: how it was made and
  how well it does (the output of `bayestumor surrogate check`);
- ``MODEL_CARD.md``: training data and ranges, grid, accuracy, speed, intended use, limits;
- ``SHA256SUMS``: checksums of all of the above.

`load_surrogate` verifies every checksum, that every required file and model-card section is
present, and that the weights have the shapes the hyperparameters describe.
"""

from __future__ import annotations

import importlib.resources
import json
import os
import warnings
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from bayestumor._custom_types import Array, ArrayLike, Float, Volume
from bayestumor.errors import InputError
from bayestumor.forward._base import AbstractForwardModel, GrowthParams
from bayestumor.forward.surrogate._data import (
    BOX_VOXELS,
    MU_D_RANGE,
    MU_RHO_RANGE,
    SPACING_MM,
    canonical_grid,
    seed_blob,
)
from bayestumor.forward.surrogate._network import NetworkConfig, SurrogateNet, count_parameters
from bayestumor.imaging import Anatomy, Grid, average_to_rescaled, coarsening_factors, rescaled_grid
from bayestumor.utils import sha256_file

FORMAT = "bayestumor-surrogate/1"
DEFAULT_MODEL = "fk-mni152-4mm-v1"
WEIGHTS_FILE = "surrogate.eqx"
HYPERPARAMETERS_FILE = "hyperparameters.json"
CARD_FILE = "MODEL_CARD.md"
CHECKSUM_FILE = "SHA256SUMS"
REQUIRED_FILES = (WEIGHTS_FILE, HYPERPARAMETERS_FILE, CARD_FILE, "training_config.json")
CARD_SECTIONS = (
    "## Training data",
    "## Grid",
    "## Accuracy",
    "## Speed",
    "## Intended use",
    "## Limits",
)


class SurrogateModelError(InputError):
    """A model folder is incomplete, corrupted or inconsistent."""


def models_dir() -> Path:
    """Where named models live: ``$BAYESTUMOR_MODELS``, else the models shipped inside the
    package (``bayestumor/forward/surrogate/models/``, installed as package data)."""
    override = os.environ.get("BAYESTUMOR_MODELS")
    if override:
        return Path(override)
    return Path(str(importlib.resources.files("bayestumor.forward.surrogate") / "models"))


class SurrogateForward(AbstractForwardModel):
    """The neural surrogate of `PDEForward` on a fixed region of interest (final class).

    The network works on a 4 mm grid (`SPACING_MM`). On a 4 mm ROI it runs on the ROI itself,
    zero-padded at the high ends to a multiple of 8 voxels (zero tissue is exactly the PDE's
    zero-flux boundary, so padding changes nothing); on any other spacing the tissues are first
    block-averaged to 4 mm (`Anatomy.resampled`) and the density is interpolated trilinearly
    back onto the ROI's voxel centres and masked to its brain. The seed enters as the PDE's
    Gaussian initial condition drawn on the working grid, so the map is differentiable in the
    seed, μ_D and μ_ρ (and through them in D_w, ρ, T), and the grid stays fixed while the seed
    moves — what NUTS needs.

    Build it with `load_surrogate(name).for_anatomy(roi_anatomy)`.

    Attributes:
        net: the trained `SurrogateNet`.
        tissues: wm, gm, csf on the padded 4 mm working grid, (X, Y, Z, 3).
        world_to_work: 4×4 map from world mm to working-grid voxel indices.
        sample_coordinates: working-grid indices of the ROI voxel centres, (3, n), or None when
            the ROI is the working grid itself.
        roi_habitable: 1 where the ROI has wm + gm > 0 (only used with resampling), (x, y, z).
        mu_D_range, mu_rho_range: training ranges (from the model's hyperparameters).
        name: model name.
    """

    net: SurrogateNet
    tissues: Array
    world_to_work: Array
    sample_coordinates: Array | None
    roi_habitable: Array | None
    mu_D_range: tuple[float, float] = eqx.field(static=True)
    mu_rho_range: tuple[float, float] = eqx.field(static=True)
    name: str = eqx.field(static=True)
    _grid: Grid = eqx.field(static=True)

    @property
    def grid(self) -> Grid:
        return self._grid

    @classmethod
    def from_anatomy(
        cls,
        anatomy: Anatomy,
        name: str = DEFAULT_MODEL,
        *,
        path: str | Path | None = None,
    ) -> SurrogateForward:
        """The shipped model `name` (verified) on `anatomy`'s grid, e.g. a patient's ROI.

        Same signature as `PDEForward.from_anatomy` where it matters, so the calibration can
        build either; `check_ranges` compares a prior with the training ranges.
        """
        return load_surrogate(name, anatomy=anatomy, path=path)

    @classmethod
    def from_network(
        cls,
        net: SurrogateNet,
        anatomy: Anatomy,
        mu_D_range: tuple[float, float],
        mu_rho_range: tuple[float, float],
        name: str,
    ) -> SurrogateForward:
        """A network (e.g. just trained, not saved) on `anatomy`'s grid, with the μ_D (mm)
        and μ_ρ ranges it was trained on."""
        return _build(net, anatomy, mu_D_range, mu_rho_range, name)

    def for_anatomy(self, anatomy: Anatomy) -> SurrogateForward:
        """The same network on `anatomy`'s grid (a patient's ROI, any spacing, orthogonal axes)."""
        return _build(self.net, anatomy, self.mu_D_range, self.mu_rho_range, self.name)

    def for_patient(self, patient) -> SurrogateForward:
        """The same network on a `Patient`'s (ROI) grid; see `for_anatomy`."""
        return self.for_anatomy(patient.anatomy)

    def _inputs(self, seed_mm: Float[ArrayLike, "3"]) -> Float[Array, "x y z channel"]:
        seed_mm = jnp.asarray(seed_mm, self.tissues.dtype)
        seed_voxel = self.world_to_work[:3, :3] @ seed_mm + self.world_to_work[:3, 3]
        habitable = (self.tissues[..., 0] + self.tissues[..., 1] > 0).astype(self.tissues.dtype)
        blob = seed_blob(seed_voxel, habitable, SPACING_MM)
        return jnp.concatenate([self.tissues, blob[..., None]], axis=-1)

    def _to_roi(self, density: Array) -> Volume:
        if self.sample_coordinates is None:
            nx, ny, nz = self.grid.shape
            return density[:nx, :ny, :nz]
        values = jax.scipy.ndimage.map_coordinates(
            density, list(self.sample_coordinates), order=1, mode="nearest"
        )
        return values.reshape(self.grid.shape) * self.roi_habitable

    def __call__(self, params: GrowthParams) -> Volume:
        """Density in [0, 1] at t = T on `self.grid` (scalar parameters; `vmap` for batches).

        Raises:
            ValueError: `params.seed_sigma_mm`, `params.seed_amplitude` or `params.gm_ratio` is
                set: the network knows only the seed and the tissue contrast it was trained on.
        """
        _refuse_sampled_seed(params)
        density = self.net(self._inputs(params.seed_mm), params.mu_D, params.mu_rho)
        return self._to_roi(density)

    def batched(self, params: GrowthParams) -> Array:
        """Densities (batch, x, y, z) for a batch of parameters in one network pass.

        Equivalent to ``jax.vmap(self)(params)`` but lets the network multiply whole batches
        (faster on the CPU).
        """
        _refuse_sampled_seed(params)
        inputs = jax.vmap(self._inputs)(jnp.asarray(params.seed_mm))
        density = self.net(inputs, params.mu_D, params.mu_rho)
        return jax.vmap(self._to_roi)(density)

    def check_ranges(self, mu_D: tuple[float, float], mu_rho: tuple[float, float]) -> list[str]:
        """Warn (and return the messages) where a prior's μ_D or μ_ρ range leaves training's."""
        messages = []
        for label, (low, high), (t_low, t_high) in (
            ("mu_D", mu_D, self.mu_D_range),
            ("mu_rho", mu_rho, self.mu_rho_range),
        ):
            if low < t_low * (1 - 1e-6) or high > t_high * (1 + 1e-6):
                messages.append(
                    f"prior range of {label} [{low:.4g}, {high:.4g}] leaves the surrogate "
                    f"'{self.name}' training range [{t_low:.4g}, {t_high:.4g}]: it extrapolates "
                    "there; use --forward pde or a narrower prior"
                )
        for message in messages:
            warnings.warn(message, UserWarning, stacklevel=2)
        return messages


def _refuse_sampled_seed(params: GrowthParams) -> None:
    if params.seed_sigma_mm is not None or params.seed_amplitude is not None:
        raise ValueError(
            "the surrogate knows only the seed it was trained on (a 4 mm Gaussian of peak 1); a "
            "sampled seed width or amplitude needs the PDE forward map"
        )
    if params.gm_ratio is not None:
        raise ValueError(
            "the surrogate knows only the grey/white ratio it was trained at (10); a sampled "
            "ratio needs the PDE forward map"
        )


def _build(
    net: SurrogateNet,
    anatomy: Anatomy,
    mu_D_range: tuple[float, float],
    mu_rho_range: tuple[float, float],
    name: str,
) -> SurrogateForward:
    roi = anatomy.grid
    if not roi.axes_orthogonal:
        raise ValueError("the grid's axes are not orthogonal; resample to an unsheared grid")
    factors = coarsening_factors(roi, SPACING_MM)
    native = all(abs(f - 1.0) < 1e-4 for f in factors)
    if native:
        work_grid, maps = roi, [anatomy.wm, anatomy.gm, anatomy.csf]
    else:
        work_grid = rescaled_grid(roi, factors)
        maps = [average_to_rescaled(m, factors) for m in (anatomy.wm, anatomy.gm, anatomy.csf)]
    multiple = net.config.multiple
    pad = [(0, max(multiple, -(-n // multiple) * multiple) - n) for n in work_grid.shape]
    tissues = np.stack([np.pad(np.clip(m, 0.0, 1.0), pad) for m in maps], axis=-1)
    world_to_work = np.linalg.inv(work_grid.affine)
    coordinates, habitable = None, None
    if not native:
        ijk = np.stack(np.meshgrid(*[np.arange(n) for n in roi.shape], indexing="ij"), -1)
        world = roi.voxel_to_world(ijk.reshape(-1, 3))
        coordinates = jnp.asarray(work_grid.world_to_voxel(world).T, jnp.float32)
        habitable = jnp.asarray((anatomy.wm + anatomy.gm) > 0, jnp.float32)
    return SurrogateForward(
        net=net,
        tissues=jnp.asarray(tissues, jnp.float32),
        world_to_work=jnp.asarray(world_to_work, jnp.float32),
        sample_coordinates=coordinates,
        roi_habitable=habitable,
        mu_D_range=tuple(float(v) for v in mu_D_range),
        mu_rho_range=tuple(float(v) for v in mu_rho_range),
        name=name,
        _grid=roi,
    )


def write_checksums(directory: str | Path) -> Path:
    """(Re)write ``SHA256SUMS`` over every other file in a model folder."""
    directory = Path(directory)
    lines = [
        f"{sha256_file(path)}  {path.name}"
        for path in sorted(directory.iterdir())
        if path.is_file() and path.name != CHECKSUM_FILE
    ]
    target = directory / CHECKSUM_FILE
    target.write_text("\n".join(lines) + "\n")
    return target


def save_network(directory: str | Path, net: SurrogateNet, *, extra: dict | None = None) -> Path:
    """Write the weights and ``hyperparameters.json`` (checksums: `write_checksums`)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    eqx.tree_serialise_leaves(directory / WEIGHTS_FILE, net)
    header = {
        "format": FORMAT,
        "network": net.config.to_dict(),
        "parameters": count_parameters(net),
        "dtype": "float32",
        "spacing_mm": SPACING_MM,
        "box_voxels": BOX_VOXELS,
        "input_channels": ["wm", "gm", "csf", "seed_blob"],
        "training_ranges": {"mu_D_mm": list(MU_D_RANGE), "mu_rho": list(MU_RHO_RANGE)},
        **(extra or {}),
    }
    (directory / HYPERPARAMETERS_FILE).write_text(json.dumps(header, indent=1) + "\n")
    return directory


def verify_model_dir(directory: str | Path) -> dict:
    """Check a model folder; returns its hyperparameters.

    Raises:
        SurrogateModelError: a required file or model-card section is missing, a checksum does
            not match (or a file is not covered), or the format is unknown.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise SurrogateModelError(f"no surrogate model folder at {directory}")
    for name in (*REQUIRED_FILES, CHECKSUM_FILE):
        if not (directory / name).is_file():
            raise SurrogateModelError(f"{directory} lacks {name}")
    listed = {}
    for line in (directory / CHECKSUM_FILE).read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            listed[name.strip()] = digest
    for path in directory.iterdir():
        if path.is_file() and path.name != CHECKSUM_FILE and path.name not in listed:
            raise SurrogateModelError(f"{path.name} is not covered by {CHECKSUM_FILE}")
    for name, digest in listed.items():
        path = directory / name
        if not path.is_file() or sha256_file(path) != digest:
            raise SurrogateModelError(f"checksum mismatch for {path}")
    card = (directory / CARD_FILE).read_text()
    missing = [section for section in CARD_SECTIONS if section not in card]
    if missing:
        raise SurrogateModelError(f"{CARD_FILE} lacks sections {missing}")
    header = json.loads((directory / HYPERPARAMETERS_FILE).read_text())
    if header.get("format") != FORMAT:
        raise SurrogateModelError(f"unknown model format {header.get('format')!r}")
    return header


def load_network(directory: str | Path, *, verify: bool = True) -> tuple[SurrogateNet, dict]:
    """The network and hyperparameters of a model folder (verified unless `verify` is False)."""
    directory = Path(directory)
    if verify:
        header = verify_model_dir(directory)
    else:
        header = json.loads((directory / HYPERPARAMETERS_FILE).read_text())
    skeleton = SurrogateNet(NetworkConfig.from_dict(header["network"]), jax.random.key(0))
    if count_parameters(skeleton) != header["parameters"]:
        raise SurrogateModelError("parameter count differs from the hyperparameters")
    try:
        net = eqx.tree_deserialise_leaves(directory / WEIGHTS_FILE, skeleton)
    except Exception as error:  # shape or dtype mismatch inside equinox/numpy
        raise SurrogateModelError(f"weights do not match the hyperparameters: {error}") from error
    return net, header


def load_surrogate(
    name: str = DEFAULT_MODEL,
    *,
    anatomy: Anatomy | None = None,
    path: str | Path | None = None,
) -> SurrogateForward:
    """Load a shipped surrogate, verified; on its 32³ box, or on `anatomy`'s grid if given.

    Args:
        name: model folder name under `models_dir()`.
        anatomy: region of interest to run on (e.g. a patient's ROI); default the canonical
            4 mm box of the training data (origin at voxel 0).
        path: explicit model folder (overrides `name`).
    """
    directory = Path(path) if path is not None else models_dir() / name
    net, header = load_network(directory)
    ranges = header["training_ranges"]
    if anatomy is None:
        grid = canonical_grid()
        zeros = np.zeros(grid.shape, np.float32)
        anatomy = Anatomy(wm=zeros + 1.0, gm=zeros, csf=zeros, grid=grid)
    forward = _build(
        net, anatomy, tuple(ranges["mu_D_mm"]), tuple(ranges["mu_rho"]), directory.name
    )
    return forward


__all__ = [
    "DEFAULT_MODEL",
    "SurrogateForward",
    "SurrogateModelError",
    "load_network",
    "load_surrogate",
    "models_dir",
    "save_network",
    "verify_model_dir",
    "write_checksums",
]
