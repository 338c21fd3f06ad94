"""What identifies a patient's result: the cohort's patients, their seeds and content hashes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bayestumor.errors import InputError
from bayestumor.utils import sha256_file

STAGING_DIR = ".staging"
"""Sub-directory of the output where workers build a patient's results before the rename."""


def discover_patients(cohort_dir: str | Path) -> list[Path]:
    """The patient directories of a cohort: every visible sub-directory, sorted by name.

    Args:
        cohort_dir: a directory with one sub-directory per patient (files beside them and
            hidden entries such as ``.git`` are ignored).

    Raises:
        InputError: `cohort_dir` is missing, not a directory, or has no sub-directory.
    """
    cohort_dir = Path(cohort_dir)
    if not cohort_dir.is_dir():
        problem = "not a directory" if cohort_dir.exists() else "cohort directory not found"
        raise InputError(f"{problem}; expected one sub-directory per patient", cohort_dir)
    patients = sorted(
        (p for p in cohort_dir.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: p.name,
    )
    if not patients:
        raise InputError("no patient sub-directories; expected one per patient", cohort_dir)
    return patients


def patient_seed(config_seed: int, patient_name: str) -> int:
    """The random seed of one patient, a pure function of the cohort seed and the patient's name.

    Independent of the order, the worker or the number of workers that run the patient, so a
    cohort's results are reproducible on any cluster. Returns an integer in [0, 2³¹).
    """
    digest = hashlib.sha256(f"{int(config_seed)}/{patient_name}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFF_FFFF


def content_hash(patient_dir: str | Path, config: Mapping[str, Any], task_name: str) -> str:
    """Hex SHA-256 of everything a patient's result depends on.

    Hashes the relative path and bytes of every visible file under `patient_dir`, the
    configuration as canonical JSON, the name of the per-patient task and the installed
    bayestumor version. Equal hashes mean the stored result can be reused.

    Args:
        patient_dir: the patient's input directory.
        config: the cohort configuration (JSON-serialisable).
        task_name: ``module:qualname`` of the per-patient function.
    """
    patient_dir = Path(patient_dir)
    header = {"config": config, "task": task_name, "bayestumor": version("bayestumor")}
    digest = hashlib.sha256(json.dumps(header, sort_keys=True, default=str).encode())
    files = sorted(
        path
        for path in patient_dir.rglob("*")
        if path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(patient_dir).parts)
    )
    for path in files:
        file_digest = sha256_file(path)
        digest.update(f"{path.relative_to(patient_dir).as_posix()}\0{file_digest}\n".encode())
    return digest.hexdigest()
