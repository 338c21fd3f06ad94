"""Training the surrogate network on PDE solves (optax AdamW, reproducible from a seed).

The loss per sample is

    L = w_mse · mean((u_net − u_pde)²) + w_dice · mean_c (1 − softDice_c),

where softDice_c compares sigmoid((u − c)/τ) of prediction and truth at the visibility thresholds
c ∈ {0.25, 0.5, 0.7} (τ = 0.05): MSE alone under-weights the tumour boundary that the MRI
likelihood sees. Each batch is additionally flipped and axis-permuted at random — exact
symmetries of isotropic diffusion on a cubic grid — so one PDE solve stands for 48 samples.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from bayestumor._custom_types import Array
from bayestumor.forward.surrogate._data import SPACING_MM, load_split, seed_blob
from bayestumor.forward.surrogate._network import NetworkConfig, SurrogateNet, count_parameters

DICE_THRESHOLDS = (0.25, 0.5, 0.7)
DICE_TEMPERATURE = 0.05


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run (a JSON file; see ``configs/surrogate_*.json``).

    Attributes:
        name: model name, the folder under ``models/``.
        data_dir: folder holding the ``train`` split written by `generate`.
        network: `NetworkConfig` as a dict.
        steps: optimiser steps.
        batch_size: samples per step.
        learning_rate: peak AdamW learning rate (linear warm-up, cosine decay to 1 %).
        warmup_steps: warm-up length.
        weight_decay: AdamW decoupled weight decay.
        mse_weight, dice_weight: loss weights (see module docstring).
        validation_samples: the last samples of ``train`` held back to monitor the loss.
        seed: PRNG seed for initialisation, batch order and augmentation.
        max_minutes: wall-clock guard; stops early (and records it) if exceeded.
    """

    name: str = "fk-mni152-4mm-v1"
    data_dir: str = "data/surrogate"
    network: dict = dataclasses.field(default_factory=lambda: NetworkConfig().to_dict())
    steps: int = 4000
    batch_size: int = 8
    learning_rate: float = 2e-3
    warmup_steps: int = 100
    weight_decay: float = 1e-4
    mse_weight: float = 100.0
    dice_weight: float = 1.0
    validation_samples: int = 128
    seed: int = 0
    max_minutes: float = 40.0

    @classmethod
    def from_json(cls, path: str | Path) -> TrainConfig:
        """Read a config file; unknown keys raise `ValueError`."""
        values = json.loads(Path(path).read_text())
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - names
        if unknown:
            raise ValueError(f"unknown training settings: {sorted(unknown)}")
        return cls(**values)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def network_inputs(tissues: Array, seed_voxel: Array, spacing_mm: float = SPACING_MM) -> Array:
    """Network input channels (..., x, y, z, 4): wm, gm, csf and the seed blob.

    Args:
        tissues: (..., 3, x, y, z) wm, gm, csf in [0, 1].
        seed_voxel: (..., 3) continuous seed position in voxel units of the box.
        spacing_mm: voxel size (mm).
    """
    habitable = (tissues[..., 0, :, :, :] + tissues[..., 1, :, :, :] > 0).astype(tissues.dtype)
    blob_fn = jnp.vectorize(
        lambda s, h: seed_blob(s, h, spacing_mm), signature="(3),(x,y,z)->(x,y,z)"
    )
    blob = blob_fn(seed_voxel, habitable)
    return jnp.concatenate([jnp.moveaxis(tissues, -4, -1), blob[..., None]], axis=-1)


def _soft_dice(pred: Array, true: Array) -> Array:
    """Mean over thresholds of the soft Dice of (batch, x, y, z) densities, per sample."""
    scores = []
    for c in DICE_THRESHOLDS:
        a = jax.nn.sigmoid((pred - c) / DICE_TEMPERATURE)
        b = jax.nn.sigmoid((true - c) / DICE_TEMPERATURE)
        inter = jnp.sum(a * b, axis=(-3, -2, -1))
        total = jnp.sum(a + b, axis=(-3, -2, -1))
        scores.append((2.0 * inter + 1.0) / (total + 1.0))
    return jnp.mean(jnp.stack(scores), axis=0)


def loss_fn(net: SurrogateNet, batch: dict, mse_weight: float, dice_weight: float) -> Array:
    """Training loss of one batch (see module docstring)."""
    inputs = network_inputs(batch["tissues"], batch["seed_voxel"])
    pred = net(inputs, batch["mu_D"], batch["mu_rho"])
    mse = jnp.mean(jnp.square(pred - batch["density"]))
    dice = jnp.mean(_soft_dice(pred, batch["density"]))
    return mse_weight * mse + dice_weight * (1.0 - dice)


def _augment(batch: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A random flip and axis permutation of the whole batch (exact PDE symmetries)."""
    n = batch["density"].shape[-1]
    perm = rng.permutation(3)
    flips = rng.uniform(size=3) < 0.5
    tissues = np.transpose(batch["tissues"], (0, 1, *(2 + perm)))
    density = np.transpose(batch["density"], (0, *(1 + perm)))
    seed = batch["seed_voxel"][:, perm].copy()
    for axis in range(3):
        if flips[axis]:
            tissues = np.flip(tissues, axis=2 + axis)
            density = np.flip(density, axis=1 + axis)
            seed[:, axis] = n - 1 - seed[:, axis]
    return {
        **batch,
        "tissues": np.ascontiguousarray(tissues),
        "density": np.ascontiguousarray(density),
        "seed_voxel": seed,
    }


def train(config: TrainConfig, *, progress: bool = True, log=print) -> tuple[SurrogateNet, dict]:
    """Train a network as `config` says; returns it and a training record (losses, times)."""
    from tqdm.auto import tqdm

    data = load_split(config.data_dir, "train")
    n_total = len(data["mu_D"])
    n_val = min(config.validation_samples, n_total // 4)
    fields = ("tissues", "density", "seed_voxel", "mu_D", "mu_rho")
    train_set = {k: data[k][: n_total - n_val] for k in fields}
    val_set = {k: jnp.asarray(data[k][n_total - n_val :]) for k in fields}
    n_train = n_total - n_val

    key = jax.random.key(config.seed)
    net = SurrogateNet(NetworkConfig.from_dict(config.network), key)
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, config.learning_rate, config.warmup_steps, config.steps, config.learning_rate * 0.01
    )
    optimiser = optax.chain(
        optax.clip_by_global_norm(1.0), optax.adamw(schedule, weight_decay=config.weight_decay)
    )
    opt_state = optimiser.init(eqx.filter(net, eqx.is_array))

    @eqx.filter_jit
    def step(net, opt_state, batch):
        loss, grads = eqx.filter_value_and_grad(loss_fn)(
            net, batch, config.mse_weight, config.dice_weight
        )
        updates, opt_state = optimiser.update(grads, opt_state, eqx.filter(net, eqx.is_array))
        return eqx.apply_updates(net, updates), opt_state, loss

    @eqx.filter_jit
    def validation_loss(net, batch):
        return loss_fn(net, batch, config.mse_weight, config.dice_weight)

    def validate(net) -> float:
        losses = []
        for start in range(0, n_val, 16):
            part = {k: v[start : start + 16] for k, v in val_set.items()}
            losses.append(float(validation_loss(net, part)) * len(part["mu_D"]))
        return sum(losses) / n_val

    rng = np.random.default_rng(config.seed)
    order = rng.permutation(n_train)
    cursor = 0
    record = {"train_loss": [], "validation_loss": [], "n_train": n_train, "n_validation": n_val}
    started = time.perf_counter()
    bar = tqdm(range(config.steps), desc="training", disable=not progress)
    running = None
    steps_done = 0
    for index in bar:
        if cursor + config.batch_size > n_train:
            order, cursor = rng.permutation(n_train), 0
        chosen = np.sort(order[cursor : cursor + config.batch_size])
        cursor += config.batch_size
        batch = _augment({k: v[chosen] for k, v in train_set.items()}, rng)
        net, opt_state, loss = step(net, opt_state, {k: jnp.asarray(v) for k, v in batch.items()})
        loss = float(loss)
        running = loss if running is None else 0.98 * running + 0.02 * loss
        steps_done = index + 1
        if steps_done % 50 == 0:
            record["train_loss"].append([steps_done, running])
            bar.set_postfix(loss=f"{running:.4f}")
        if steps_done % 500 == 0 or steps_done == config.steps:
            val = validate(net)
            record["validation_loss"].append([steps_done, val])
            log(f"step {steps_done}: train {running:.4f}  validation {val:.4f}")
        if time.perf_counter() - started > 60.0 * config.max_minutes:
            log(f"stopping after {steps_done} steps: max_minutes = {config.max_minutes} reached")
            record["validation_loss"].append([steps_done, validate(net)])
            break
    bar.close()
    record.update(
        steps_done=steps_done,
        wall_seconds=round(time.perf_counter() - started, 1),
        parameters=count_parameters(net),
        device=str(jax.devices()[0].device_kind),
        platform=jax.default_backend(),
    )
    return net, record


__all__ = ["TrainConfig", "loss_fn", "network_inputs", "train"]
