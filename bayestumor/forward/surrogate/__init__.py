"""Neural surrogate of the Fisher–Kolmogorov forward map (equinox), trained on our own PDE.

- `SurrogateForward` / `load_surrogate`: a shipped model as a drop-in `AbstractForwardModel`;
  shipped models live in this package's ``models/`` folder (package data, `models_dir`).
- `SurrogateNet`, `NetworkConfig`: the FiLM-conditioned U-Net.
- `DataConfig`, `generate`, `load_split`: PDE training data on augmented MNI152 crops.
- `TrainConfig`, `train`: optax training from a JSON config.
- `check_model`, `format_table`, `write_card`: accuracy against fresh PDE solves, model card.

Reweighting a surrogate posterior by the exact PDE is inference, not a forward map: see
`bayestumor.inference.reweight`.
"""

from bayestumor.forward.surrogate._check import check_model as check_model
from bayestumor.forward.surrogate._check import evaluate as evaluate
from bayestumor.forward.surrogate._check import format_table as format_table
from bayestumor.forward.surrogate._check import fresh_solves as fresh_solves
from bayestumor.forward.surrogate._check import measure_speed as measure_speed
from bayestumor.forward.surrogate._check import predict as predict
from bayestumor.forward.surrogate._check import write_card as write_card
from bayestumor.forward.surrogate._data import SPACING_MM as SPACING_MM
from bayestumor.forward.surrogate._data import DataConfig as DataConfig
from bayestumor.forward.surrogate._data import canonical_grid as canonical_grid
from bayestumor.forward.surrogate._data import generate as generate
from bayestumor.forward.surrogate._data import load_split as load_split
from bayestumor.forward.surrogate._forward import CARD_SECTIONS as CARD_SECTIONS
from bayestumor.forward.surrogate._forward import DEFAULT_MODEL as DEFAULT_MODEL
from bayestumor.forward.surrogate._forward import SurrogateForward as SurrogateForward
from bayestumor.forward.surrogate._forward import SurrogateModelError as SurrogateModelError
from bayestumor.forward.surrogate._forward import load_network as load_network
from bayestumor.forward.surrogate._forward import load_surrogate as load_surrogate
from bayestumor.forward.surrogate._forward import models_dir as models_dir
from bayestumor.forward.surrogate._forward import save_network as save_network
from bayestumor.forward.surrogate._forward import verify_model_dir as verify_model_dir
from bayestumor.forward.surrogate._forward import write_checksums as write_checksums
from bayestumor.forward.surrogate._network import NetworkConfig as NetworkConfig
from bayestumor.forward.surrogate._network import SurrogateNet as SurrogateNet
from bayestumor.forward.surrogate._network import blur as blur
from bayestumor.forward.surrogate._network import depth_to_space as depth_to_space
from bayestumor.forward.surrogate._network import space_to_depth as space_to_depth
from bayestumor.forward.surrogate._train import TrainConfig as TrainConfig
from bayestumor.forward.surrogate._train import train as train
