"""Training and test data for the surrogate: PDE solves on augmented anatomy crops, on disk.

Every sample is one Fisher–Kolmogorov solve (`PDEForward`, Heun fixed steps) on a cubic box of
`BOX_VOXELS`³ voxels of `SPACING_MM` mm cut from the MNI152 2009c template (nilearn's wheel) or
from the synthetic phantom, with zero flux through the box faces — exactly what `PDEForward`
computes on a calibration region of interest of that size. Augmentation (so that unseen anatomy
generalises):

- sub-voxel phase: the 1 mm template is block-averaged to 4 mm from one of 8 phases (0 or 2 mm
  per axis), so voxel boundaries fall differently;
- flips along each axis (probability ½ each);
- crop jitter: the box centre is the seed voxel plus a uniform integer offset of up to
  `JITTER_VOXELS` per axis (the calibration ROI is centred on the prior's seed centre, not on the
  seed), and the seed sits anywhere inside its voxel;
- mild deformation: a smooth random displacement field (sd `DEFORMATION_SD_VOXELS` voxels,
  correlation length ≈ box/4) resamples the tissue maps before the solve.

Parameters are drawn log-uniformly over the scale-free ranges μ_D = √(D_w T) ∈ `MU_D_RANGE` mm and
μ_ρ = √(ρ T) ∈ `MU_RHO_RANGE` (the default priors of `bayestumor.config.Priors`). Seeds fall in brain
voxels (wm + gm ≥ 0.5), 70 % weighted by white-matter probability.

Splits: ``train`` never seeds in the MNI slab `HELD_OUT_Y_MM` (original, unflipped MNI y);
``test`` seeds only there, with fresh deformations; ``phantom`` uses `make_phantom`, an anatomy
never seen in training.

On disk (``DIR/<split>/``): shards ``shard_00000.npz`` (tissues as uint8 ×255, density float16,
seed position in box voxel units, μ_D, μ_ρ, augmentation record) and ``manifest.json`` (generator
settings, shard names, sample counts and SHA-256). Each shard's randomness is
``fold_in(seed, shard)``, so generation is resumable and reproducible: finished shards listed in
the manifest are skipped.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from scipy import ndimage

from bayestumor.forward._base import GrowthParams
from bayestumor.forward._pde import PDEForward
from bayestumor.forward._seed import DEFAULT_SEED_SIGMA_MM, gaussian_seed
from bayestumor.imaging import Anatomy, Grid, average_to_rescaled, load_mni152, make_phantom
from bayestumor.utils import atomic_path, sha256_file

SPACING_MM = 4.0
BOX_VOXELS = 32
MU_D_RANGE = (1.0, 30.0)
MU_RHO_RANGE = (1.0, 8.0)
JITTER_VOXELS = 3
DEFORMATION_SD_VOXELS = 1.0
HELD_OUT_Y_MM = (-30.0, -10.0)
SEED_SIGMA_MM = DEFAULT_SEED_SIGMA_MM
# Gershgorin bound 2·Σ_faces k/h² with k ≤ 1 on 6 faces at h = 4 mm: one static value for all
# boxes, so every solve shares one compiled program (it only ever adds steps).
LAMBDA_BOUND_PER_MM2 = 12.0 / SPACING_MM**2

SPLITS = ("train", "test", "phantom")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Settings of one generated split (recorded in its manifest).

    Attributes:
        split: ``train``, ``test`` (held-out MNI seeds) or ``phantom`` (unseen anatomy).
        n_samples: number of PDE solves.
        shard_size: samples per shard file.
        seed: PRNG seed; shard i uses ``fold_in(key(seed), i)``.
    """

    split: str = "train"
    n_samples: int = 3072
    shard_size: int = 64
    seed: int = 0

    def __post_init__(self):
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {self.split!r}")

    @property
    def n_shards(self) -> int:
        return -(-self.n_samples // self.shard_size)


def canonical_grid(shape: tuple[int, int, int] = (BOX_VOXELS,) * 3) -> Grid:
    """The box grid every training solve uses: `SPACING_MM` voxels, voxel (0, 0, 0) at the origin."""
    return Grid(shape, np.diag([SPACING_MM, SPACING_MM, SPACING_MM, 1.0]))


def seed_blob(
    seed_voxel: jax.Array, habitable: jax.Array, spacing_mm: float = SPACING_MM
) -> jax.Array:
    """The PDE's initial condition on a box (`gaussian_seed` of `SEED_SIGMA_MM`) × habitable.

    Args:
        seed_voxel: continuous seed position in box voxel units (3,).
        habitable: 1 where wm + gm > 0, (x, y, z).
        spacing_mm: isotropic voxel size.
    """
    spacing = (spacing_mm,) * 3
    return gaussian_seed(seed_voxel, habitable.shape, spacing, SEED_SIGMA_MM) * habitable


def _box_solver(wm: np.ndarray, gm: np.ndarray, max_steps: int) -> PDEForward:
    """`PDEForward` on the canonical box with the shared static settings."""
    forward = PDEForward.from_tissues(
        wm, gm, canonical_grid(wm.shape), seed_sigma_mm=SEED_SIGMA_MM, max_steps=max_steps
    )
    # Static fields must agree across anatomies (solvers are stacked): both spectral bounds
    # become the one that holds for any relative diffusivity k ≤ 1.
    assert forward.lambda_any_ratio_per_mm2 <= LAMBDA_BOUND_PER_MM2 + 1e-9
    return dataclasses.replace(
        forward,
        lambda_per_mm2=LAMBDA_BOUND_PER_MM2,
        lambda_any_ratio_per_mm2=LAMBDA_BOUND_PER_MM2,
    )


def max_steps_for_ranges(
    mu_D_range: tuple[float, float] = MU_D_RANGE, mu_rho_range: tuple[float, float] = MU_RHO_RANGE
) -> int:
    """Fixed-step bound covering the whole parameter range on any 4 mm box."""
    wm = np.ones((BOX_VOXELS,) * 3, np.float32)
    return _box_solver(wm, 0 * wm, 1).sized_for(mu_D_range[1] ** 2, mu_rho_range[1] ** 2).max_steps


@functools.partial(eqx.filter_jit)
def _solve_many(solvers: PDEForward, params: GrowthParams) -> jax.Array:
    """Densities of stacked solvers and parameters, one after another (`lax.map`).

    Sequential rather than `vmap`: each solve then skips the fixed steps it does not need (under
    `vmap` every solve would pay for the largest step count).
    """
    arrays, static = eqx.partition(solvers, eqx.is_array)

    def one(item):
        solver_arrays, p = item
        return eqx.combine(solver_arrays, static)(p)

    return jax.lax.map(one, (arrays, params))


@functools.lru_cache(maxsize=8)
def _mni_phase(phase: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, Grid]:
    """MNI152 tissues block-averaged to `SPACING_MM` starting `phase` mm into the 1 mm grid."""
    anatomy = load_mni152(1.0)
    sl = tuple(slice(p, None) for p in phase)
    factors = (SPACING_MM,) * 3
    maps = [average_to_rescaled(getattr(anatomy, n)[sl], factors) for n in ("wm", "gm", "csf")]
    affine = anatomy.grid.affine.copy()
    affine[:3, 3] = anatomy.grid.voxel_to_world(np.array(phase, float))
    scale = np.diag([SPACING_MM, SPACING_MM, SPACING_MM, 1.0])
    scale[:3, 3] = (SPACING_MM - 1.0) / 2.0
    return (*maps, Grid(maps[0].shape, affine @ scale))


@functools.lru_cache(maxsize=1)
def _phantom() -> tuple[np.ndarray, np.ndarray, np.ndarray, Grid]:
    anatomy: Anatomy = make_phantom((44, 52, 42), SPACING_MM)
    return anatomy.wm, anatomy.gm, anatomy.csf, anatomy.grid


def _deform(maps: np.ndarray, rng: np.random.Generator, sd_voxels: float) -> np.ndarray:
    """Resample (c, x, y, z) maps through a smooth random displacement (trilinear)."""
    shape = maps.shape[1:]
    coarse = rng.normal(0.0, sd_voxels, size=(3, 5, 5, 5))
    fields = [
        ndimage.zoom(c, [n / 5 for n in shape], order=3, mode="nearest")[
            : shape[0], : shape[1], : shape[2]
        ]
        for c in coarse
    ]
    grid = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij")
    coords = [g + f for g, f in zip(grid, fields, strict=True)]
    return np.stack([ndimage.map_coordinates(m, coords, order=1, mode="constant") for m in maps])


def _draw_sample(rng: np.random.Generator, split: str) -> dict:
    """One augmented box (tissues (3, n, n, n) in [0, 1], seed in box voxels) and parameters."""
    n = BOX_VOXELS
    if split == "phantom":
        wm, gm, csf, grid = _phantom()
        phase = (0, 0, 0)
    else:
        phase = tuple(int(p) for p in rng.integers(0, 2, size=3) * 2)
        wm, gm, csf, grid = _mni_phase(phase)
    brain = (wm + gm) >= 0.5
    voxels = np.argwhere(brain)
    world_y = grid.voxel_to_world(voxels)[:, 1]
    if split != "phantom":
        held_out = (world_y >= HELD_OUT_Y_MM[0]) & (world_y <= HELD_OUT_Y_MM[1])
        voxels = voxels[held_out] if split == "test" else voxels[~held_out]
    weights = wm[tuple(voxels.T)] + 1e-3
    if rng.uniform() < 0.3:
        weights = np.ones(len(voxels))
    seed_voxel = voxels[rng.choice(len(voxels), p=weights / weights.sum())]
    seed_world = grid.voxel_to_world(seed_voxel.astype(float))
    jitter = rng.integers(-JITTER_VOXELS, JITTER_VOXELS + 1, size=3)
    margin = 4  # extra voxels so the deformation never pulls in the zero padding of the crop
    start = seed_voxel + jitter - n // 2 - margin
    maps = np.stack([wm, gm, csf])
    pad = n + 2 * margin
    padded = np.pad(maps, [(0, 0)] + [(pad, pad)] * 3)
    box = padded[(slice(None), *(slice(s + pad, s + pad + n + 2 * margin) for s in start))]
    box = _deform(box, rng, DEFORMATION_SD_VOXELS)[
        :, margin:-margin, margin:-margin, margin:-margin
    ]
    flips = rng.uniform(size=3) < 0.5
    seed_in_box = (seed_voxel - start - margin + rng.uniform(-0.5, 0.5, size=3)).astype(np.float64)
    for axis in range(3):
        if flips[axis]:
            box = np.flip(box, axis=axis + 1)
            seed_in_box[axis] = n - 1 - seed_in_box[axis]
    box = np.clip(box, 0.0, 1.0)
    total = box.sum(axis=0)
    box = np.where(total > 1.0, box / np.maximum(total, 1e-6), box)
    box = np.round(box * 255.0) / 255.0  # stored as uint8: solve on exactly what is stored
    log_mu_D = rng.uniform(*np.log(MU_D_RANGE))
    log_mu_rho = rng.uniform(*np.log(MU_RHO_RANGE))
    return {
        "tissues": box.astype(np.float32),
        "seed_voxel": seed_in_box,
        "mu_D": float(np.exp(log_mu_D)),
        "mu_rho": float(np.exp(log_mu_rho)),
        "augmentation": np.array([*phase, *flips.astype(int), *jitter, *seed_world]),
    }


def generate_shard(config: DataConfig, index: int, max_steps: int) -> dict[str, np.ndarray]:
    """Draw and solve shard `index` of `config`: a dict of arrays ready for `np.savez`."""
    rng = np.random.default_rng([config.seed, SPLITS.index(config.split), index])
    count = min(config.shard_size, config.n_samples - index * config.shard_size)
    samples = [_draw_sample(rng, config.split) for _ in range(count)]
    solvers = [_box_solver(s["tissues"][0], s["tissues"][1], max_steps) for s in samples]
    stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), *solvers)
    seed_mm = jnp.asarray(np.stack([s["seed_voxel"] for s in samples]) * SPACING_MM)
    params = GrowthParams.from_scale_free(
        jnp.asarray([s["mu_D"] for s in samples]),
        jnp.asarray([s["mu_rho"] for s in samples]),
        seed_mm,
        T=jnp.ones(count),
    )
    density = np.asarray(_solve_many(stacked, params))
    if not np.all(np.isfinite(density)):
        raise RuntimeError(f"non-finite PDE density in shard {index} of {config.split}")
    return {
        "tissues": np.round(np.stack([s["tissues"] for s in samples]) * 255).astype(np.uint8),
        "density": density.astype(np.float16),
        "seed_voxel": np.stack([s["seed_voxel"] for s in samples]).astype(np.float32),
        "mu_D": np.array([s["mu_D"] for s in samples], np.float32),
        "mu_rho": np.array([s["mu_rho"] for s in samples], np.float32),
        "augmentation": np.stack([s["augmentation"] for s in samples]).astype(np.float32),
    }


def _write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def generate(config: DataConfig, directory: str | Path, *, progress: bool = True) -> Path:
    """Generate (or resume) one split under ``directory/<split>/``; returns the manifest path.

    Shards already listed in the manifest (with matching settings and checksum) are kept.
    """
    from tqdm.auto import tqdm

    out = Path(directory) / config.split
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.json"
    settings = {
        **dataclasses.asdict(config),
        "spacing_mm": SPACING_MM,
        "box_voxels": BOX_VOXELS,
        "mu_D_range_mm": list(MU_D_RANGE),
        "mu_rho_range": list(MU_RHO_RANGE),
        "jitter_voxels": JITTER_VOXELS,
        "deformation_sd_voxels": DEFORMATION_SD_VOXELS,
        "held_out_y_mm": list(HELD_OUT_Y_MM),
        "seed_sigma_mm": SEED_SIGMA_MM,
        "solver": "PDEForward FixedStep (Heun), zero flux at the box faces",
        "anatomy": "phantom" if config.split == "phantom" else "MNI152 2009c (nilearn)",
    }
    manifest = {"settings": settings, "shards": {}}
    if manifest_path.exists():
        old = json.loads(manifest_path.read_text())
        if old["settings"] != settings:
            raise ValueError(
                f"{manifest_path} was written with other settings; use a new directory"
            )
        manifest = old
    max_steps = max_steps_for_ranges()
    todo = [
        i
        for i in range(config.n_shards)
        if not (
            f"shard_{i:05d}.npz" in manifest["shards"]
            and (out / f"shard_{i:05d}.npz").exists()
            and sha256_file(out / f"shard_{i:05d}.npz")
            == manifest["shards"][f"shard_{i:05d}.npz"]["sha256"]
        )
    ]
    bar = tqdm(total=config.n_samples, desc=f"PDE solves ({config.split})", disable=not progress)
    bar.update(
        config.n_samples
        - sum(min(config.shard_size, config.n_samples - i * config.shard_size) for i in todo)
    )
    for index in todo:
        started = time.perf_counter()
        arrays = generate_shard(config, index, max_steps)
        name = f"shard_{index:05d}.npz"
        with atomic_path(out / name) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
        manifest["shards"][name] = {
            "samples": len(arrays["mu_D"]),
            "sha256": sha256_file(out / name),
            "seconds": round(time.perf_counter() - started, 2),
        }
        manifest["shards"] = dict(sorted(manifest["shards"].items()))
        _write_text(manifest_path, json.dumps(manifest, indent=1))
        bar.update(len(arrays["mu_D"]))
    bar.close()
    if not manifest_path.exists():
        _write_text(manifest_path, json.dumps(manifest, indent=1))
    return manifest_path


def load_split(directory: str | Path, split: str) -> dict[str, np.ndarray]:
    """All shards of a split concatenated (tissues as float32 in [0, 1], density float32).

    Raises if a shard is missing or its checksum differs from the manifest.
    """
    out = Path(directory) / split
    manifest = json.loads((out / "manifest.json").read_text())
    parts = []
    for name, entry in manifest["shards"].items():
        path = out / name
        if sha256_file(path) != entry["sha256"]:
            raise ValueError(f"{path} does not match its manifest checksum")
        with np.load(path) as shard:
            parts.append({key: shard[key] for key in shard.files})
    if not parts:
        raise ValueError(f"no shards in {out}")
    data = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    data["tissues"] = data["tissues"].astype(np.float32) / 255.0
    data["density"] = data["density"].astype(np.float32)
    return data


def parameter_ranges() -> dict[str, tuple[float, float]]:
    """The training ranges of the scale-free parameters (for the model card and load checks)."""
    return {"mu_D": MU_D_RANGE, "mu_rho": MU_RHO_RANGE}


__all__ = [
    "BOX_VOXELS",
    "MU_D_RANGE",
    "MU_RHO_RANGE",
    "SPACING_MM",
    "DataConfig",
    "canonical_grid",
    "generate",
    "load_split",
    "max_steps_for_ranges",
    "parameter_ranges",
    "seed_blob",
]
