"""The wheel is complete: installed into a fresh virtual environment, away from the source tree,
`bayestumor` imports from that environment and the shipped surrogate loads (checksums verified)
and runs.

Independent truth: the wheel's own file list, and an interpreter that cannot see the source tree
(its working directory is empty, ``-P`` keeps it off ``sys.path``, and the fresh environment's
site-packages comes first on ``PYTHONPATH``). The dependencies are this environment's, reused
through ``PYTHONPATH`` so that nothing is downloaded.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODEL = "fk-mni152-4mm-v1"
MODEL_IN_WHEEL = f"bayestumor/forward/surrogate/models/{MODEL}"

# Runs in the fresh environment: argv[1] is that environment's prefix.
CHECK = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import jax.numpy as jnp
    import numpy as np

    import bayestumor
    from bayestumor.forward import GrowthParams
    from bayestumor.forward.surrogate import DEFAULT_MODEL, load_surrogate, models_dir

    prefix = Path(sys.argv[1]).resolve()
    assert prefix in Path(bayestumor.__file__).resolve().parents, bayestumor.__file__
    assert prefix in models_dir().resolve().parents, models_dir()
    assert DEFAULT_MODEL == "fk-mni152-4mm-v1", DEFAULT_MODEL

    forward = load_surrogate()  # verifies every checksum, the card and the weights' shapes
    assert forward.name == DEFAULT_MODEL
    shape = forward.grid.shape
    seed_voxel = np.array(shape) // 2
    # A small tumour (10 % into the training ranges), so it stays clear of the box's faces.
    (mu_D_low, mu_D_high), (mu_rho_low, mu_rho_high) = forward.mu_D_range, forward.mu_rho_range
    params = GrowthParams.from_scale_free(
        mu_D=mu_D_low + 0.1 * (mu_D_high - mu_D_low),
        mu_rho=mu_rho_low + 0.1 * (mu_rho_high - mu_rho_low),
        seed_mm=jnp.asarray(forward.grid.voxel_to_world(seed_voxel), jnp.float32),
    )
    density = np.asarray(forward(params))
    assert density.shape == shape, density.shape
    assert np.all(np.isfinite(density)) and density.min() >= -1e-3 and density.max() <= 1 + 1e-3
    # In a box of white matter the tumour is dense at its seed, thin at the corners and
    # centred on the seed (density-weighted centroid within one voxel).
    centroid = (np.indices(shape).reshape(3, -1) * density.ravel()).sum(1) / density.sum()
    assert density[tuple(seed_voxel)] > 0.5 and density[0, 0, 0] < 0.05, density.max()
    assert np.max(np.abs(centroid - seed_voxel)) < 1.0, centroid
    print("ok", bayestumor.__file__, shape, float(density[tuple(seed_voxel)]))
    """
)


def _run(command: list, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, (
        f"{' '.join(map(str, command))} failed ({result.returncode}):\n"
        f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    )
    return result


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_wheel_ships_the_surrogate_and_runs_outside_the_source_tree(tmp_path):
    # Build from a copy, so the build's egg-info and build/ folders stay out of the checkout.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "bayestumor",
        source / "bayestumor",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"),
    )
    wheels = tmp_path / "wheels"
    # No build isolation: the build backend (setuptools) is already installed; nothing to fetch.
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
          "--quiet", "-w", wheels, source])  # fmt: skip
    (wheel,) = wheels.glob("bayestumor-*.whl")

    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        listed = archive.read(f"{MODEL_IN_WHEEL}/SHA256SUMS").decode().split()[1::2]
    assert f"{MODEL_IN_WHEEL}/SHA256SUMS" in names
    assert f"{MODEL_IN_WHEEL}/surrogate.eqx" in names
    assert {f"{MODEL_IN_WHEEL}/{name}" for name in listed} <= names, "files the checksums list"
    assert not any(name.startswith("tests/") for name in names)

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv])
    _run([venv / "bin" / "python", "-m", "pip", "install", "--no-deps", "--no-index", "--quiet",
          wheel])  # fmt: skip
    fresh_site = _run(
        [venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]
    ).stdout.strip()
    # This environment's site-packages supplies the dependencies; its editable bayestumor is a
    # .pth hook, which Python does not run for PYTHONPATH entries, so it cannot shadow the wheel.
    dependencies = sysconfig.get_path("purelib")
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([fresh_site, dependencies]),
        "JAX_PLATFORMS": "cpu",
    }
    environment.pop("BAYESTUMOR_MODELS", None)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = _run(
        [venv / "bin" / "python", "-P", "-c", CHECK, venv], cwd=elsewhere, env=environment
    )
    assert result.stdout.startswith("ok "), result.stdout
