"""Accuracy of a trained surrogate against fresh PDE solves, and the model card.

`check_model` solves the PDE afresh (new random draws, never written to the training set) on two
held-out sets — MNI152 crops seeded only in the slab of the brain that training never seeds in
(``test``) and the synthetic phantom, an anatomy never used in training (``phantom``) — and
compares the network's densities with them per sample: MSE, MAE, Dice of the regions
u > 0.25 / 0.5 / 0.7 (the visibility thresholds of FLAIR and T1c; Dice counts 1 where both regions
are empty) and the normalised cross-correlation over habitable voxels.
"""

from __future__ import annotations

import json
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from bayestumor.forward.surrogate._data import (
    BOX_VOXELS,
    SPACING_MM,
    DataConfig,
    _box_solver,
    _solve_many,
    generate_shard,
    max_steps_for_ranges,
)
from bayestumor.forward.surrogate._forward import (
    CARD_FILE,
    load_network,
    write_checksums,
)
from bayestumor.forward.surrogate._network import SurrogateNet
from bayestumor.forward.surrogate._train import network_inputs
from bayestumor.utils import median_seconds

THRESHOLDS = (0.25, 0.5, 0.7)
SPLIT_LABELS = {
    "test": "MNI152, held-out seed slab",
    "phantom": "phantom (unseen anatomy)",
}


def sample_metrics(pred: np.ndarray, true: np.ndarray, habitable: np.ndarray) -> dict[str, float]:
    """MSE, MAE, Dice at `THRESHOLDS` and normalised cross-correlation of one sample."""
    result = {
        "mse": float(np.mean((pred - true) ** 2)),
        "mae": float(np.mean(np.abs(pred - true))),
    }
    for c in THRESHOLDS:
        a, b = pred > c, true > c
        total = a.sum() + b.sum()
        result[f"dice_{c}"] = 1.0 if total == 0 else float(2.0 * (a & b).sum() / total)
    p, t = pred[habitable], true[habitable]
    p, t = p - p.mean(), t - t.mean()
    denominator = np.sqrt((p**2).sum() * (t**2).sum())
    result["ncc"] = float((p * t).sum() / denominator) if denominator > 1e-12 else float("nan")
    return result


def predict(net: SurrogateNet, data: dict[str, np.ndarray], batch: int = 16) -> np.ndarray:
    """Network densities for stored samples (tissues (n, 3, x, y, z), seeds, μ_D, μ_ρ)."""
    run = eqx.filter_jit(
        lambda net, tissues, seed, mu_D, mu_rho: net(network_inputs(tissues, seed), mu_D, mu_rho)
    )
    out = []
    for start in range(0, len(data["mu_D"]), batch):
        part = slice(start, start + batch)
        out.append(
            np.asarray(
                run(
                    net,
                    jnp.asarray(data["tissues"][part], jnp.float32),
                    jnp.asarray(data["seed_voxel"][part]),
                    jnp.asarray(data["mu_D"][part]),
                    jnp.asarray(data["mu_rho"][part]),
                )
            )
        )
    return np.concatenate(out)


def fresh_solves(split: str, n_samples: int, seed: int, *, progress: bool = True) -> dict:
    """`n_samples` new PDE solves of a held-out split (in memory; float32 tissues in [0, 1])."""
    from tqdm.auto import tqdm

    max_steps = max_steps_for_ranges()
    chunk = 16
    config = DataConfig(split=split, n_samples=n_samples, shard_size=chunk, seed=seed)
    parts = []
    for index in tqdm(range(config.n_shards), desc=f"fresh PDE ({split})", disable=not progress):
        parts.append(generate_shard(config, index, max_steps))
    data = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    data["tissues"] = data["tissues"].astype(np.float32) / 255.0
    data["density"] = data["density"].astype(np.float32)
    return data


def evaluate(net: SurrogateNet, data: dict) -> dict[str, int | float]:
    """Mean metrics over a set of samples (NCC over samples where it is defined)."""
    pred = predict(net, data)
    habitable = (data["tissues"][:, 0] + data["tissues"][:, 1]) > 0
    rows = [sample_metrics(pred[i], data["density"][i], habitable[i]) for i in range(len(pred))]
    summary = {"n": len(rows)}
    for key in rows[0]:
        values = np.array([row[key] for row in rows], dtype=float)
        summary[key] = float(np.nanmean(values))
    summary["mse_p90"] = float(np.percentile([row["mse"] for row in rows], 90))
    summary["dice_0.5_p10"] = float(np.percentile([row["dice_0.5"] for row in rows], 10))
    return summary


def check_model(
    directory: str | Path,
    *,
    n_samples: int = 128,
    seed: int = 12345,
    splits: tuple[str, ...] = ("test", "phantom"),
    progress: bool = True,
    verify: bool = True,
) -> dict:
    """Accuracy table of a model folder against fresh PDE solves (see module docstring)."""
    net, _ = load_network(directory, verify=verify)
    result = {"model": Path(directory).name, "seed": seed, "splits": {}}
    for split in splits:
        data = fresh_solves(split, n_samples, seed, progress=progress)
        result["splits"][split] = evaluate(net, data)
    return result


def format_table(result: dict) -> str:
    """The accuracy result as a markdown table."""
    header = "| held-out set | n | MSE | MAE | Dice u>0.25 | Dice u>0.5 | Dice u>0.7 | NCC |"
    lines = [header, "|---|---|---|---|---|---|---|---|"]
    for split, row in result["splits"].items():
        lines.append(
            f"| {SPLIT_LABELS.get(split, split)} | {row['n']} | {row['mse']:.2e} | "
            f"{row['mae']:.2e} | {row['dice_0.25']:.3f} | {row['dice_0.5']:.3f} | "
            f"{row['dice_0.7']:.3f} | {row['ncc']:.3f} |"
        )
    return "\n".join(lines)


def measure_speed(net: SurrogateNet, repeats: int = 5) -> dict[str, float]:
    """Seconds per simulation on one 32³ box at 4 mm: surrogate vs PDE, batch 1 and 64.

    The PDE is the same fixed-step Heun solver that made the training data, at a mid-range
    parameter set (μ_D = 8 mm, μ_ρ = 3); `lax.map` over a batch (each solve takes its own
    step count).
    """
    from bayestumor.forward._base import GrowthParams

    rng = np.random.default_rng(0)
    tissues = rng.uniform(size=(64, 3, BOX_VOXELS, BOX_VOXELS, BOX_VOXELS)).astype(np.float32)
    tissues /= tissues.sum(axis=1, keepdims=True)
    seeds = np.full((64, 3), BOX_VOXELS / 2, np.float32)
    mu_D, mu_rho = np.full(64, 8.0, np.float32), np.full(64, 3.0, np.float32)
    run = eqx.filter_jit(lambda net, tissues, seed, a, b: net(network_inputs(tissues, seed), a, b))

    speed = {}
    for batch in (1, 64):
        args = (jnp.asarray(tissues[:batch]), jnp.asarray(seeds[:batch]))
        seconds = median_seconds(
            run, net, *args, jnp.asarray(mu_D[:batch]), jnp.asarray(mu_rho[:batch]), repeats=repeats
        )
        speed[f"surrogate_batch{batch}_s_per_sim"] = seconds / batch
    max_steps = max_steps_for_ranges()
    for batch in (1, 64):
        solvers = [_box_solver(tissues[i, 0], tissues[i, 1], max_steps) for i in range(batch)]
        stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), *solvers)
        params = GrowthParams.from_scale_free(
            jnp.asarray(mu_D[:batch]),
            jnp.asarray(mu_rho[:batch]),
            jnp.asarray(seeds[:batch] * SPACING_MM),
            T=jnp.ones(batch),
        )
        # One timed batch of 64 solves is long enough to be stable.
        seconds = median_seconds(_solve_many, stacked, params, repeats=repeats if batch == 1 else 1)
        speed[f"pde_batch{batch}_s_per_sim"] = seconds / batch
    for batch in (1, 64):
        speed[f"speedup_batch{batch}"] = (
            speed[f"pde_batch{batch}_s_per_sim"] / speed[f"surrogate_batch{batch}_s_per_sim"]
        )
    speed["device"] = str(jax.devices()[0].device_kind)
    return speed


def _card(directory: Path, result: dict, speed: dict) -> str:
    header = json.loads((directory / "hyperparameters.json").read_text())
    config = json.loads((directory / "training_config.json").read_text())
    record_path = directory / "training_record.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    ranges = header["training_ranges"]
    network = header["network"]
    val = record.get("validation_loss", [[None, float("nan")]])[-1][1]
    return f"""# Surrogate `{directory.name}`

Neural surrogate of the Fisher–Kolmogorov forward map of bayestumor (`PDEForward`): tumour-cell
density on a region of interest from the growth parameters and the local anatomy. Load it with
`bayestumor.forward.surrogate.load_surrogate("{directory.name}")`; loading verifies
`SHA256SUMS`, this card's sections and the weight shapes, and warns when priors leave the
training ranges.

## Architecture
FiLM-conditioned U-Net for XLA-CPU ({header["parameters"]:,} parameters, float32,
widths {network["widths"]}, {network["blocks"]} blocks per level). Inputs: wm, gm, csf and the
PDE's Gaussian seed blob (σ = 4 mm) on a 4 mm grid; (log μ_D, log μ_ρ) enter by FiLM
(Perez et al. 2018; parameter-conditioned U-Net as in Weidner et al. 2024). Lossless
space-to-depth in, depth-to-space out, so the heavy layers run at 8, 16 and 32 mm; spatial
mixing by a fixed, symmetric 3×3×3 binomial stencil and learned per-voxel (1×1×1) layers —
like a learned explicit PDE step. Output: sigmoid × habitable mask (exactly 0 in CSF, as the
PDE). Why: on this 2-core CPU a dense 3×3×3 convolution 8→8 at 32³ costs 50 ms in XLA and a
width-16 U-Net 0.39 s per forward pass; this design runs a forward pass in about
{1e3 * speed["surrogate_batch1_s_per_sim"]:.0f} ms, a training step of 8 in well under a second,
so it could be trained on the CPU within the time budget. The seed enters as an image, so the
map is translation-equivariant, differentiable in the seed, and its grid stays fixed while the
seed moves (what NUTS needs).

## Training data
{record.get("n_train", "?")} PDE solves for training (+ {record.get("n_validation", "?")} for
validation) from `bayestumor surrogate generate` (`data/surrogate/train/manifest.json`):
`PDEForward` (Heun, fixed steps bounded by stability and reaction accuracy, gm ratio 10) on
32³ boxes of 4 mm cut from the MNI152 2009c template (nilearn), zero flux at the box faces.
Ranges (log-uniform): μ_D = √(D_w T) ∈ [{ranges["mu_D_mm"][0]}, {ranges["mu_D_mm"][1]}] mm,
μ_ρ = √(ρ T) ∈ [{ranges["mu_rho"][0]}, {ranges["mu_rho"][1]}] — the default scale-free priors
of `bayestumor.config.Priors` (D_w·T up to 900 mm², ρ·T up to 64). Seeds in brain voxels (70 %
weighted by white matter), never in the MNI slab y ∈ [−30, −10] mm (held out). Augmentation:
8 sub-voxel phases of the 4 mm block average, flips, crop jitter of ±3 voxels (seed off-centre
in the box), smooth random deformations (sd 1 voxel), and at training time random flips and
axis permutations (exact symmetries of isotropic diffusion).
Training: {config["steps"]} AdamW steps planned, {record.get("steps_done", "?")} done, batch
{config["batch_size"]}, lr {config["learning_rate"]} (warm-up, cosine), loss
{config["mse_weight"]}·MSE + {config["dice_weight"]}·(1 − soft Dice at u = 0.25/0.5/0.7), seed
{config["seed"]}; {record.get("wall_seconds", 0) / 60:.0f} min wall on the
**{record.get("platform", "cpu").upper()}** ({record.get("device", "?")}, 2 cores shared, no GPU
was lent for this model); final validation loss {val:.4f}. Config: `training_config.json`.

## Grid
Native: 4 mm isotropic, trained on 32³ boxes (128 mm); runs on any region whose sides are
padded to multiples of {2 ** len(network["widths"])} voxels (zero tissue = the PDE's zero-flux
boundary). Other spacings: tissues block-averaged to 4 mm, density interpolated trilinearly
back (so at 2 mm it reproduces the 4 mm PDE, not the 2 mm one).

## Accuracy
Against fresh PDE solves (`bayestumor surrogate check`, seed {result["seed"]}), never in the
training data: MNI152 crops seeded only in the held-out slab, and the synthetic phantom.

{format_table(result)}

## Speed
One 32³ box at 4 mm, {speed["device"]}, seconds per simulation (fixed-step PDE at μ_D = 8 mm,
μ_ρ = 3, as generated the data):

| | batch 1 | batch 64 |
|---|---|---|
| surrogate | {speed["surrogate_batch1_s_per_sim"]:.2e} | {speed["surrogate_batch64_s_per_sim"]:.2e} |
| PDE | {speed["pde_batch1_s_per_sim"]:.2e} | {speed["pde_batch64_s_per_sim"]:.2e} |
| speed-up | {speed["speedup_batch1"]:.0f}× | {speed["speedup_batch64"]:.0f}× |

See `benchmarks/surrogate.py` for the full comparison and a NUTS calibration.

## Intended use
Fast likelihood evaluations in calibration (`--forward surrogate`), exploratory posteriors,
initialising and importance-reweighting exact PDE posteriors
(`bayestumor.inference.reweight`), on adult brains in MNI-like orientation,
4 mm (or coarser-resampled) ROIs, μ_D and μ_ρ inside the ranges above.

## Limits
- Emulates the 4 mm PDE; at finer calibration grids the 4 mm discretisation error remains.
- Trained on one template (MNI152) with augmentation; unseen real anatomy (lesions, mass
  effect, resection cavities) is out of distribution — check with the hybrid PDE refinement.
- Outside the training ranges of μ_D, μ_ρ it extrapolates (a warning is issued).
- Small errors near thresholds move visible boundaries by about a voxel; Dice for u > 0.7 on
  small tumours is the weakest number above.
- Not yet accurate enough for PDE-equivalent posteriors when the data pin the parameters
  tightly: on the 4 mm synthetic patient of `tests/forward/test_surrogate_posterior.py`
  (posterior sd of μ_D ≈ 0.08 mm) the surrogate posterior mean of μ_D was 8.9 mm against the
  PDE's 7.05 mm (truth 6.7). Always run the hybrid check (`reweight`, PSIS k̂) and
  fall back to the PDE sampler when k̂ ≥ 0.7. More training (data, steps; a GPU) is the fix.
- Not a medical device; research use only.
"""


def write_card(directory: str | Path, result: dict, speed: dict | None = None) -> Path:
    """Write ``accuracy.json``, ``MODEL_CARD.md`` (measuring speed if not given), checksums."""
    directory = Path(directory)
    net, _ = load_network(directory, verify=False)
    speed = speed or measure_speed(net)
    (directory / "accuracy.json").write_text(
        json.dumps({**result, "speed": speed}, indent=1) + "\n"
    )
    (directory / CARD_FILE).write_text(_card(directory, result, speed))
    write_checksums(directory)
    return directory / CARD_FILE


__all__ = [
    "THRESHOLDS",
    "check_model",
    "evaluate",
    "format_table",
    "fresh_solves",
    "measure_speed",
    "predict",
    "sample_metrics",
    "write_card",
]
