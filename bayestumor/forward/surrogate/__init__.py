"""Neural surrogate of the Fisher–Kolmogorov forward map (equinox), trained on our own PDE.

- `SurrogateForward` / `load_surrogate`: a shipped model as a drop-in `AbstractForwardModel`.
- `SurrogateNet`, `NetworkConfig`: the FiLM-conditioned U-Net.
- `DataConfig`, `generate`, `load_split`: PDE training data on augmented MNI152 crops.
- `TrainConfig`, `train`: optax training from a JSON config.
- `check_model`, `format_table`, `write_card`: accuracy against fresh PDE solves, model card.
- `reweight_with_pde`: hybrid refinement of a surrogate posterior by the exact PDE likelihood.
"""

from bayestumor.forward.surrogate._check import check_model, format_table, write_card
from bayestumor.forward.surrogate._data import DataConfig, generate, load_split
from bayestumor.forward.surrogate._forward import (
    DEFAULT_MODEL,
    SurrogateForward,
    SurrogateModelError,
    load_surrogate,
    models_dir,
    verify_model_dir,
)
from bayestumor.forward.surrogate._network import NetworkConfig, SurrogateNet
from bayestumor.forward.surrogate._refine import (
    PARETO_K_GOOD,
    Refinement,
    format_refinement,
    psis,
    reweight_with_pde,
)
from bayestumor.forward.surrogate._train import TrainConfig, train

__all__ = [
    "DEFAULT_MODEL",
    "PARETO_K_GOOD",
    "DataConfig",
    "NetworkConfig",
    "Refinement",
    "SurrogateForward",
    "SurrogateModelError",
    "SurrogateNet",
    "TrainConfig",
    "check_model",
    "format_refinement",
    "format_table",
    "generate",
    "load_split",
    "load_surrogate",
    "models_dir",
    "psis",
    "reweight_with_pde",
    "train",
    "verify_model_dir",
    "write_card",
]
