"""Cohort engine guarantees: resume, killed workers, bad input, determinism across worker counts.

The engine is tested with `stand_in_task`, a small deterministic per-patient task that reads the
patient through `load_patient` (so corrupt input raises the real `InputError`), draws from the
patient's seed, writes an output file and takes ~0.6 s, long enough to be killed mid-run.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from bayestumor import cli
from bayestumor.cohort import (
    DONE_FILE,
    ERROR_FILE,
    TABLE_CSV,
    TABLE_PARQUET,
    content_hash,
    discover_patients,
    local_client,
    patient_seed,
    read_record,
    run_cohort,
)
from bayestumor.errors import InputError
from bayestumor.imaging import load_patient, make_phantom, save_nifti

GOOD_PATIENTS = ("p01", "p02", "p03", "p04", "p05")
CORRUPT_PATIENT = "p06-corrupt"
CONFIG = {"seed": 7, "draws": 400, "sleep_s": 0.6}
TASK = f"{__name__}:stand_in_task"
PATIENT_SEED_7_P01 = 1431829709
"""`patient_seed(7, "p01")` as computed by the scheme's first version (commit 2a7e487)."""


def stand_in_task(
    patient_dir: Path, out_dir: Path, config: dict[str, Any], seed: int
) -> dict[str, Any]:
    """A deterministic stand-in for `calibrate_patient`, with a summary of the same shape."""
    patient = load_patient(patient_dir)
    flair_ml = patient.observations.volumes_ml()["flair"]
    rng = np.random.default_rng(seed)
    draws = {
        "D_w": 0.01 * flair_ml ** (1 / 3) * rng.lognormal(0.0, 0.3, config["draws"]),
        "rho": 0.01 * rng.lognormal(0.0, 0.3, config["draws"]),
    }
    # Output first, then the long part: a worker killed now leaves a half-written patient.
    np.savez(out_dir / "draws.npz", **draws)
    time.sleep(config["sleep_s"])
    parameters = {
        name: {
            "mean": float(x.mean()),
            "sd": float(x.std()),
            "q05": float(np.quantile(x, 0.05)),
            "q95": float(np.quantile(x, 0.95)),
        }
        for name, x in draws.items()
    }
    diagnostics = {"passed": True, "failures": [], "divergences": 0}
    return {"parameters": parameters, "diagnostics": diagnostics, "flair_ml": flair_ml}


def flaky_task(patient_dir: Path, out_dir: Path, config: dict[str, Any], seed: int) -> dict:
    """`stand_in_task`, except that the patients listed in ``config["fail"]`` raise a bug."""
    if patient_dir.name in config["fail"]:
        raise RuntimeError("simulated bug")
    return stand_in_task(patient_dir, out_dir, config, seed)


def write_patient(directory: Path, lesion_radius_mm: float) -> Path:
    """A phantom patient with a spherical lesion (T1c core inside FLAIR) of the given radius."""
    anatomy = make_phantom((24, 24, 24), 6.0)
    ijk = np.stack(np.meshgrid(*map(np.arange, anatomy.shape), indexing="ij"), axis=-1)
    distance_mm = np.linalg.norm(anatomy.grid.voxel_to_world(ijk) - [20.0, 10.0, 5.0], axis=-1)
    for name, volume in {
        "wm": anatomy.wm,
        "gm": anatomy.gm,
        "csf": anatomy.csf,
        "t1c": distance_mm <= lesion_radius_mm / 2,
        "flair": distance_mm <= lesion_radius_mm,
    }.items():
        save_nifti(directory / f"{name}.nii.gz", volume, anatomy.grid)
    return directory


@pytest.fixture(scope="module")
def cohort_dir(tmp_path_factory) -> Path:
    """Five good patients with different lesions and one with a corrupt FLAIR file."""
    root = tmp_path_factory.mktemp("cohort")
    for index, name in enumerate(GOOD_PATIENTS):
        write_patient(root / name, lesion_radius_mm=14.0 + 4.0 * index)
    shutil.copytree(root / GOOD_PATIENTS[0], root / CORRUPT_PATIENT)
    (root / CORRUPT_PATIENT / "flair.nii.gz").write_bytes(b"not a NIfTI file")
    return root


@pytest.fixture(scope="module")
def client():
    """A two-worker local cluster (processes, one thread each), shared by this module."""
    with local_client(2) as dask_client:
        yield dask_client


@pytest.fixture(scope="module")
def clean_run(cohort_dir, tmp_path_factory):
    """An uninterrupted run on the default local cluster with one worker."""
    out = tmp_path_factory.mktemp("clean")
    return run_cohort(cohort_dir, out, CONFIG, task=stand_in_task, n_workers=1, progress=False)


def outputs(out: Path) -> dict[str, Any]:
    """Per good patient: the summary without its runtime and the bytes of the output file."""
    result = {}
    for name in GOOD_PATIENTS:
        summary = read_record(out / name)["summary"]
        summary.pop("runtime_s")
        result[name] = (summary, (out / name / "draws.npz").read_bytes())
    return result


def wait_for(condition, timeout_s: float = 120.0) -> None:
    """Poll `condition()` every 50 ms until true; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# --- keys ----------------------------------------------------------------------------------


_SEED_PROBE = (
    "from bayestumor.cohort import patient_seed; "
    "print([patient_seed(s, n) for s in (0, 7) for n in ('p01', 'p02', 'p10')])"
)


def test_patient_seed_depends_only_on_the_cohort_seed_and_the_name():
    """Reproducible on any worker: the seed is the same in fresh interpreters with different
    string-hash randomisation (``PYTHONHASHSEED``; Python's own `hash` of a name would differ)
    and equal to the value recorded when the scheme was introduced (a stored cohort resumes
    with the seeds it was computed with); different seeds or names give different seeds, all
    in [0, 2³¹)."""
    here = [patient_seed(seed, name) for seed in (0, 7) for name in ("p01", "p02", "p10")]
    hash_seed = "1" if os.environ.get("PYTHONHASHSEED") != "1" else "2"
    probe = subprocess.run(
        [sys.executable, "-c", _SEED_PROBE],
        env=os.environ | {"PYTHONHASHSEED": hash_seed},
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(probe.stdout) == here
    assert patient_seed(7, "p01") == PATIENT_SEED_7_P01
    assert len(set(here)) == 6
    assert all(0 <= s < 2**31 for s in here)


def test_content_hash_changes_with_input_bytes_config_and_task(tmp_path):
    patient = tmp_path / "p"
    patient.mkdir()
    (patient / "wm.nii.gz").write_bytes(b"abc")
    key = content_hash(patient, {"seed": 0}, "m:f")
    (patient / ".DS_Store").write_bytes(b"ignored")
    assert content_hash(patient, {"seed": 0}, "m:f") == key
    assert content_hash(patient, {"seed": 1}, "m:f") != key
    assert content_hash(patient, {"seed": 0}, "m:g") != key
    (patient / "wm.nii.gz").write_bytes(b"abd")
    assert content_hash(patient, {"seed": 0}, "m:f") != key


def test_discover_patients_lists_visible_subdirectories_and_rejects_an_empty_cohort(tmp_path):
    for name in ("b", "a", ".hidden"):
        (tmp_path / name).mkdir()
    (tmp_path / "notes.txt").write_text("")
    assert [p.name for p in discover_patients(tmp_path)] == ["a", "b"]
    with pytest.raises(InputError, match="no patient"):
        discover_patients(tmp_path / "a")
    with pytest.raises(InputError, match="not found"):
        discover_patients(tmp_path / "missing")


def _thread_settings() -> tuple[str, str]:
    return os.environ["OMP_NUM_THREADS"], os.environ["XLA_FLAGS"]


def test_local_workers_start_with_one_thread_settings(client):
    for omp, xla_flags in client.run(_thread_settings).values():
        assert omp == "1"
        assert "--xla_cpu_multi_thread_eigen=false" in xla_flags
        assert xla_flags.count("device_count") == 1
        assert "--xla_force_host_platform_device_count=1" in xla_flags


def test_local_workers_get_one_thread_settings_whatever_this_process_has_set(monkeypatch):
    # What `use_cpu_cores_for_chains` leaves behind after a parallel-chains calibration.
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    with local_client(1) as one_worker:
        ((omp, xla_flags),) = one_worker.run(_thread_settings).values()
    assert omp == "1"
    assert "--xla_force_host_platform_device_count=1" in xla_flags.split()
    assert "--xla_cpu_multi_thread_eigen=false" in xla_flags.split()
    assert os.environ["XLA_FLAGS"] == "--xla_force_host_platform_device_count=2"
    assert os.environ["OMP_NUM_THREADS"] == "4"


def test_worker_environment_replaces_a_parallel_chains_device_count(monkeypatch):
    from bayestumor.cohort import worker_environment

    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2 --xla_dump_to=x")
    flags = worker_environment()["XLA_FLAGS"].split()
    assert "--xla_force_host_platform_device_count=1" in flags and "--xla_dump_to=x" in flags
    assert "--xla_force_host_platform_device_count=2" not in flags


# --- a clean run ---------------------------------------------------------------------------


def test_clean_run_writes_every_patient_the_table_and_the_figure(clean_run):
    out = clean_run.out_dir
    table = pd.read_csv(out / TABLE_CSV)
    assert list(table["patient"]) == [*GOOD_PATIENTS, CORRUPT_PATIENT]
    pd.testing.assert_frame_equal(pd.read_parquet(out / TABLE_PARQUET), clean_run.table)
    assert set(clean_run.computed) == {*GOOD_PATIENTS, CORRUPT_PATIENT}
    assert clean_run.reused == ()
    done = table.set_index("patient").loc[list(GOOD_PATIENTS)]
    assert (done["status"] == "done").all()
    d_w = done[["parameters.D_w.q05", "parameters.D_w.mean", "parameters.D_w.q95"]].to_numpy()
    assert (np.diff(d_w, axis=1) > 0).all()
    diagnostics = clean_run.table.set_index("patient").loc[list(GOOD_PATIENTS)]
    assert diagnostics["diagnostics.passed"].all()
    assert (diagnostics["diagnostics.failures"] == "").all()  # an empty list, flattened
    assert (done["runtime_s"] > 0.5).all()
    assert done["flair_ml"].is_monotonic_increasing  # lesions grow with the patient index
    for name in GOOD_PATIENTS:
        assert sorted(p.name for p in (out / name).iterdir()) == [DONE_FILE, "draws.npz"]
    assert (out / "cohort_forest.png").stat().st_size > 0
    assert not (out / ".staging").exists()


def test_a_corrupt_patient_records_its_error_and_the_others_finish(clean_run):
    row = clean_run.table.set_index("patient").loc[CORRUPT_PATIENT]
    assert row["status"] == "error"
    assert "InputError" in row["error"] and "flair.nii.gz" in row["error"]
    assert clean_run.failed == (CORRUPT_PATIENT,)
    assert sorted(p.name for p in (clean_run.out_dir / CORRUPT_PATIENT).iterdir()) == [ERROR_FILE]


def test_results_do_not_depend_on_the_number_of_workers(clean_run, cohort_dir, client, tmp_path):
    two_workers = run_cohort(
        cohort_dir, tmp_path, CONFIG, task=stand_in_task, client=client, progress=False
    )
    assert outputs(tmp_path) == outputs(clean_run.out_dir)
    columns = [c for c in clean_run.table.columns if c != "runtime_s"]
    pd.testing.assert_frame_equal(two_workers.table[columns], clean_run.table[columns])


# --- faults and resumption -----------------------------------------------------------------


def test_a_killed_worker_loses_and_duplicates_no_patient(clean_run, cohort_dir, client, tmp_path):
    pids_before = client.run(os.getpid)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        running = pool.submit(
            run_cohort,
            cohort_dir,
            tmp_path,
            CONFIG,
            task=stand_in_task,
            client=client,
            progress=False,
        )
        # Kill a worker while it is inside a patient: its output is half-written in staging.
        staging = tmp_path / ".staging"
        wait_for(lambda: staging.is_dir() and any(staging.glob("*/draws.npz")))
        busy = [address for address, keys in client.processing().items() if keys]
        os.kill(pids_before[busy[0]], signal.SIGKILL)
        result = running.result(timeout=120)
    assert pids_before[busy[0]] not in client.run(os.getpid).values()  # the nanny restarted it
    assert list(result.table["patient"]) == [*GOOD_PATIENTS, CORRUPT_PATIENT]
    assert list(result.table["status"]) == ["done"] * len(GOOD_PATIENTS) + ["error"]
    assert outputs(tmp_path) == outputs(clean_run.out_dir)
    for name in GOOD_PATIENTS:
        assert sorted(p.name for p in (tmp_path / name).iterdir()) == [DONE_FILE, "draws.npz"]
    assert not staging.exists()


def test_an_interrupted_run_resumes_without_recomputing_finished_patients(
    clean_run, cohort_dir, tmp_path, capsys
):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "bayestumor.cli", "cohort", str(cohort_dir), "--out", str(out)]
    command += ["--config", str(_write_json(tmp_path / "config.json", CONFIG))]
    command += ["--task", TASK, "--no-progress"]
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path])}
    log = tmp_path / "stderr.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [*command, "--workers", "1"], env=env, start_new_session=True, stderr=stderr
        )
    try:
        wait_for(lambda: len(list(out.glob(f"*/{DONE_FILE}"))) >= 2 or process.poll() is not None)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the client, its cluster and its workers
        process.wait()
    assert process.returncode == -signal.SIGKILL, log.read_text()
    finished = {path.parent.name: path.stat().st_mtime_ns for path in out.glob(f"*/{DONE_FILE}")}
    assert 2 <= len(finished) < len(GOOD_PATIENTS)
    assert pd.read_csv(out / TABLE_CSV)["patient"].tolist() == [*GOOD_PATIENTS, CORRUPT_PATIENT]

    exit_code = cli.main([*command[3:], "--workers", "2"])
    assert exit_code == 1  # the corrupt patient
    assert "computed" in capsys.readouterr().out
    after = {name: (out / name / DONE_FILE).stat().st_mtime_ns for name in finished}
    assert after == finished  # reused, not rewritten
    assert outputs(out) == outputs(clean_run.out_dir)
    assert not (out / ".staging").exists()


def test_a_finished_run_is_reused_and_a_changed_configuration_recomputes(
    clean_run, cohort_dir, client
):
    out = clean_run.out_dir
    again = run_cohort(cohort_dir, out, CONFIG, task=stand_in_task, client=client, progress=False)
    assert again.computed == ()
    assert set(again.reused) == {*GOOD_PATIENTS, CORRUPT_PATIENT}  # bad input is not retried
    pd.testing.assert_frame_equal(again.table, clean_run.table)

    changed = run_cohort(
        cohort_dir, out, CONFIG | {"seed": 8}, task=stand_in_task, client=client, progress=False
    )
    assert set(changed.computed) == {*GOOD_PATIENTS, CORRUPT_PATIENT}
    assert (changed.table["seed"] != clean_run.table["seed"]).all()
    assert (
        (changed.table["parameters.D_w.mean"] != clean_run.table["parameters.D_w.mean"])
        .iloc[:-1]
        .all()
    )


def test_an_unexpected_error_is_recorded_as_failed_and_retried_by_the_next_run(
    cohort_dir, client, tmp_path
):
    config = CONFIG | {"fail": ["p02"], "sleep_s": 0.0}
    first = run_cohort(
        cohort_dir, tmp_path, config, task=flaky_task, client=client, retries=0, progress=False
    )
    row = first.table.set_index("patient").loc["p02"]
    assert row["status"] == "failed" and "simulated bug" in row["error"]
    assert not (tmp_path / "p02").exists()
    second = run_cohort(
        cohort_dir, tmp_path, config, task=flaky_task, client=client, progress=False
    )
    assert second.computed == ("p02",)


def _write_json(path: Path, value: Any) -> Path:
    path.write_text(json.dumps(value))
    return path


@pytest.mark.skipif(not Path("/proc/self/mem").exists(), reason="needs /proc (Linux)")
def test_an_unreadable_patient_fails_alone(cohort_dir, client, tmp_path):
    cohort = tmp_path / "cohort"
    shutil.copytree(cohort_dir / "p01", cohort / "p01")
    (cohort / "unreadable").mkdir()
    (cohort / "unreadable" / "wm.nii.gz").symlink_to("/proc/self/mem")  # reading it fails: EIO
    result = run_cohort(
        cohort, tmp_path / "out", CONFIG, task=stand_in_task, client=client, progress=False
    )
    assert list(result.table["status"]) == ["done", "failed"]
    assert "OSError" in result.table["error"].iloc[1]
