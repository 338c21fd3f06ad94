"""Cohort calibration on Dask: one task per patient, resumable, fault-tolerant.

Guarantees and how they are kept:

- **Atomic results.** A worker builds a patient's results in ``OUT/.staging/<patient>.*``,
  writes ``DONE.json`` (or ``ERROR.json``) there last, then renames the directory to
  ``OUT/<patient>``. A worker killed at any point leaves only a staging directory, which is
  removed by the next run; Dask reschedules the lost task on another worker (up to the
  scheduler's ``distributed.scheduler.allowed-failures``, 3 by default).
- **Resumable.** ``DONE.json`` records the patient's content hash (input bytes, configuration,
  task, package version; `content_hash`). A patient whose stored hash matches is reused, not
  recomputed; a changed input or configuration recomputes it.
- **Fault-tolerant.** Bad input (`InputError`) is recorded in ``ERROR.json`` and in the table —
  deterministic, so a resume does not retry it until the input changes. Any other exception is
  retried ``retries`` times by Dask, then recorded as ``failed`` in the table only, so the next
  run tries again. No failure stops the other patients.
- **Reproducible.** Each patient's seed depends only on the configuration's seed and the
  patient's name (`patient_seed`), and every worker runs one patient at a time with the same
  thread settings, so results do not depend on the number of workers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bayestumor.cohort._keys import STAGING_DIR, content_hash, discover_patients, patient_seed
from bayestumor.cohort._table import write_forest_plot, write_table
from bayestumor.errors import InputError
from bayestumor.utils import atomic_path

if TYPE_CHECKING:
    import pandas as pd
    from distributed import Client

PatientTask = Callable[[Path, Path, dict[str, Any], int], Mapping[str, Any]]
"""Per-patient function ``(patient_dir, out_dir, config, seed) -> summary``.

It writes its outputs into `out_dir` (an empty directory that becomes ``OUT/<patient>``),
raises `InputError` for bad input and returns a JSON-serialisable summary, possibly nested
(``{"D_w": {"mean": ..., "q05": ...}, "rhat_max": ..., "ok": ...}``); the cohort table
flattens nested keys with dots (``D_w.mean``). Workers must be able to import it, or it is
defined in the script or notebook itself (then Dask ships it by value).
"""

DONE_FILE = "DONE.json"
ERROR_FILE = "ERROR.json"
TABLE_CSV = "cohort.csv"
TABLE_PARQUET = "cohort.parquet"
FOREST_PNG = "cohort_forest.png"

_TABLE_INTERVAL_S = 2.0
_PUBLISH_ATTEMPTS = 5


def worker_environment() -> dict[str, str]:
    """Environment for worker processes: one compute thread each, so N workers use N cores.

    ``OMP/MKL/OPENBLAS_NUM_THREADS=1`` for NumPy and SciPy; XLA's Eigen thread pool off and one
    host device for JAX (so NUTS chains run one after the other inside a worker; appended to
    the other ``XLA_FLAGS`` already set). These must be set before a worker imports
    NumPy or JAX: `run_cohort` does so for its local cluster; on a cluster, export them in the
    job script (see ``docs/cohort_slurm.md``). JAX 0.12 accepts these flags; with them a worker
    measured one core's worth of CPU time per second of wall time on the 32³ PDE.
    """
    kept = [
        flag
        for flag in os.environ.get("XLA_FLAGS", "").split()
        if not flag.startswith("--xla_force_host_platform_device_count")
    ]
    xla_flags = " ".join([*kept, "--xla_force_host_platform_device_count=1"])
    if "xla_cpu_multi_thread_eigen" not in xla_flags:
        xla_flags = f"{xla_flags} --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    return {
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "XLA_FLAGS": xla_flags.strip(),
    }


def calibrate_task(
    patient_dir: Path, out_dir: Path, config: dict[str, Any], seed: int
) -> dict[str, Any]:
    """The default `PatientTask`: `bayestumor.calibrate.calibrate_patient` with `seed`.

    Per-patient progress output is switched off: the cohort has its own progress bar.
    """
    from bayestumor.workflows import CalibrationConfig, calibrate_patient

    patient_config = CalibrationConfig.from_dict({**config, "seed": seed, "progress": False})
    return dict(calibrate_patient(patient_dir, out_dir, patient_config).summary)


@dataclasses.dataclass(frozen=True)
class CohortResult:
    """What `run_cohort` did.

    Attributes:
        table: one row per patient (the contents of ``cohort.csv``).
        out_dir: the output directory.
        computed: patients calibrated in this run.
        reused: patients whose stored result (or recorded input error) matched their hash.
        failed: patients with status ``error`` (bad input) or ``failed`` (any other exception).
    """

    table: pd.DataFrame
    out_dir: Path
    computed: tuple[str, ...]
    reused: tuple[str, ...]
    failed: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class _Job:
    """Everything a worker needs to run one patient."""

    patient: str
    patient_dir: Path
    out_dir: Path
    config: dict[str, Any]
    seed: int
    key: str


def run_cohort(
    cohort_dir: str | Path,
    out_dir: str | Path,
    config: Any = None,
    *,
    task: PatientTask | None = None,
    n_workers: int | None = None,
    scheduler: str | None = None,
    client: Client | None = None,
    retries: int = 2,
    progress: bool = True,
) -> CohortResult:
    """Calibrate every patient of a cohort with one shared configuration, on Dask.

    Every visible sub-directory of `cohort_dir` is a patient. Results go to
    ``out_dir/<patient>/`` (with ``DONE.json`` or ``ERROR.json``); the cohort table to
    ``cohort.csv`` and ``cohort.parquet`` (rewritten atomically as patients finish, so an
    interrupted run leaves a valid table) and a forest plot of D_w and ρ to
    ``cohort_forest.png``. Running again reuses every finished patient whose inputs and
    configuration are unchanged. The worker, scheduling and number of workers do not change
    any result.

    Args:
        cohort_dir: directory of patient directories.
        out_dir: output directory (created; shared with the workers).
        config: the shared configuration — a `CalibrationConfig` (or anything with
            ``to_dict()``) or a JSON-serialisable mapping; its ``seed`` (default 0) seeds the
            per-patient seeds. None: ``CalibrationConfig()`` for the default task, ``{}`` else.
        task: the per-patient function (`PatientTask`); default `calibrate_task`.
        n_workers: worker processes of the local cluster (default: the usable CPU cores, at
            most one per patient to compute). Ignored with `scheduler` or `client`.
        scheduler: address of an existing Dask scheduler, e.g. ``tcp://10.0.0.1:8786``.
        client: an existing `distributed.Client` to use (not closed afterwards).
        retries: extra attempts for a patient whose task raises something else than
            `InputError` (lost workers are retried by the scheduler regardless).
        progress: show a progress bar.

    Raises:
        InputError: `cohort_dir` has no patient sub-directories.
    """
    if scheduler is not None and client is not None:
        raise ValueError("give either a scheduler address or a client, not both")
    task = calibrate_task if task is None else task
    config_dict = _config_dict(config, default_task=task is calibrate_task)
    task_name = f"{task.__module__}:{task.__qualname__}"
    cohort_seed = int(config_dict.get("seed", 0))
    out_dir = Path(out_dir).absolute()
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out_dir / STAGING_DIR, ignore_errors=True)

    records: dict[str, dict[str, Any]] = {}
    reused, pending = [], []
    for patient_dir in discover_patients(cohort_dir):
        job = _Job(
            patient=patient_dir.name,
            patient_dir=patient_dir.absolute(),
            out_dir=out_dir,
            config=config_dict,
            seed=patient_seed(cohort_seed, patient_dir.name),
            key="",
        )
        try:
            job = dataclasses.replace(job, key=content_hash(patient_dir, config_dict, task_name))
        except OSError as error:  # unreadable files: this patient fails, the others go on
            records[job.patient] = _record(job, "failed", error=f"{type(error).__name__}: {error}")
            continue
        stored = read_record(out_dir / job.patient)
        if stored is not None and stored.get("key") == job.key:
            records[job.patient] = stored
            reused.append(job.patient)
        else:
            records[job.patient] = _record(job, "pending")
            pending.append(job)
    write_table(records.values(), out_dir / TABLE_CSV, out_dir / TABLE_PARQUET)

    if pending:
        if n_workers is None:
            from dask.system import CPU_COUNT  # honours affinity and cgroup quotas

            n_workers = min(len(pending), CPU_COUNT)
        with _connect(client, scheduler, n_workers) as dask_client:
            _compute(dask_client, pending, task, retries, records, progress)
    shutil.rmtree(out_dir / STAGING_DIR, ignore_errors=True)

    table = write_table(records.values(), out_dir / TABLE_CSV, out_dir / TABLE_PARQUET)
    write_forest_plot(table, out_dir / FOREST_PNG)
    return CohortResult(
        table=table,
        out_dir=out_dir,
        computed=tuple(job.patient for job in pending),
        reused=tuple(reused),
        failed=tuple(name for name, r in records.items() if r["status"] in ("error", "failed")),
    )


def read_record(patient_out_dir: Path) -> dict[str, Any] | None:
    """The stored ``DONE.json`` (else ``ERROR.json``) of a patient's output, or None."""
    for name in (DONE_FILE, ERROR_FILE):
        path = patient_out_dir / name
        if path.is_file():
            try:
                return json.loads(path.read_text())
            except (OSError, ValueError):
                return None
    return None


def _config_dict(config: Any, *, default_task: bool) -> dict[str, Any]:
    """The configuration as a plain JSON-compatible dict.

    For the default task a mapping is read as a `CalibrationConfig` (unset options take their
    defaults; a bad option raises `InputError` here, before any patient runs), so equal
    configurations hash equally however they were written.
    """
    if default_task:
        from bayestumor.workflows import CalibrationConfig

        if config is None:
            config = CalibrationConfig()
        elif isinstance(config, Mapping):
            config = CalibrationConfig.from_dict(dict(config))
    if config is None:
        return {}
    if hasattr(config, "to_dict"):
        config = config.to_dict()
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a mapping or have to_dict(), got {type(config)}")
    return json.loads(json.dumps(dict(config), sort_keys=True))


@contextlib.contextmanager
def local_client(n_workers: int) -> Iterator[Client]:
    """A client of a new local cluster: `n_workers` processes, one thread each, closed on exit.

    Workers get `worker_environment` before they start, so they do not oversubscribe the
    cores. Pass the client to several `run_cohort` calls to pay the start-up once.
    """
    import dask
    from distributed import Client, LocalCluster

    settings = worker_environment()
    environ = {**dask.config.get("distributed.nanny.pre-spawn-environ"), **settings}
    # Nannies read this when created and reuse it when they restart a killed worker. A value
    # already in this process's environment overrides the config (e.g. the device count that
    # parallel NUTS chains set), so the environment holds the worker settings meanwhile too.
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}), _environ(settings):
        cluster = LocalCluster(
            n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=":0"
        )
    with cluster, Client(cluster) as client:
        yield client


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    """Set `values` in ``os.environ`` for the duration of the block, then restore it."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def _connect(client: Client | None, scheduler: str | None, n_workers: int) -> Iterator[Client]:
    """A Dask client: the one given, one connected to `scheduler`, or a new local cluster."""
    if client is not None:
        yield client
    elif scheduler is not None:
        from distributed import Client

        with Client(scheduler) as remote_client:
            yield remote_client
    else:
        with local_client(n_workers) as new_client:
            yield new_client


def _compute(
    client: Client,
    jobs: list[_Job],
    task: PatientTask,
    retries: int,
    records: dict[str, dict[str, Any]],
    progress: bool,
) -> None:
    """Run `jobs` on `client`, updating `records` and the table as each patient finishes."""
    from distributed import as_completed
    from tqdm import tqdm

    out_dir = jobs[0].out_dir
    run_id = uuid.uuid4().hex[:8]
    futures = {
        client.submit(
            _run_patient, job, task, key=f"cohort-{job.patient}-{run_id}", retries=retries
        ): job
        for job in jobs
    }
    last_write = time.monotonic()
    bar = tqdm(total=len(jobs), desc="cohort", unit="patient", disable=not progress)
    try:
        for future in as_completed(futures):
            job = futures.pop(future)
            try:
                records[job.patient] = future.result()
            except Exception as error:  # any failure is recorded, never raised
                records[job.patient] = _record(
                    job, "failed", error=f"{type(error).__name__}: {error}"
                )
            future.release()
            bar.update()
            if time.monotonic() - last_write >= _TABLE_INTERVAL_S:
                write_table(records.values(), out_dir / TABLE_CSV, out_dir / TABLE_PARQUET)
                last_write = time.monotonic()
    finally:
        bar.close()
        # Interrupted (Ctrl-C): stop the rest, which a shared cluster would otherwise finish.
        client.cancel(list(futures))


def _run_patient(job: _Job, task: PatientTask) -> dict[str, Any]:
    """Worker side: run `task` for one patient in a staging directory, then publish it."""
    staging_root = job.out_dir / STAGING_DIR
    staging_root.mkdir(parents=True, exist_ok=True)
    # mkdir (not mkdtemp) so that the published directory has the umask's permissions.
    staging = staging_root / f"{job.patient}.{uuid.uuid4().hex}"
    staging.mkdir()
    try:
        start = time.perf_counter()
        try:
            summary = _jsonable(dict(task(job.patient_dir, staging, dict(job.config), job.seed)))
        except InputError as error:
            shutil.rmtree(staging)
            staging.mkdir()
            record = _record(job, "error", error=f"{type(error).__name__}: {error}")
            record_file = ERROR_FILE
        else:
            summary.setdefault("runtime_s", time.perf_counter() - start)
            record = _record(job, "done", summary=summary)
            record_file = DONE_FILE
        with atomic_path(staging / record_file) as tmp:
            tmp.write_text(json.dumps(record, indent=2))
        return _publish(staging, job.out_dir / job.patient, record)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _publish(staging: Path, final: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Rename the complete `staging` directory to `final`; returns the record that is there.

    If another attempt at the same patient (a task Dask ran twice) published the same result
    first, that one is kept. An older result (other hash) is moved aside and deleted.
    """
    for _ in range(_PUBLISH_ATTEMPTS):
        existing = read_record(final)
        if existing is not None and (existing["key"], existing["status"]) == (
            record["key"],
            record["status"],
        ):
            return existing
        if final.exists():
            old = staging.parent / f"{final.name}.old.{uuid.uuid4().hex}"
            os.rename(final, old)
            shutil.rmtree(old, ignore_errors=True)
        try:
            os.rename(staging, final)
        except OSError as error:
            if error.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
        else:
            return record
    raise RuntimeError(f"could not publish {final}: other writers keep replacing it")


def _record(
    job: _Job, status: str, *, summary: dict[str, Any] | None = None, error: str | None = None
) -> dict[str, Any]:
    """A patient's record, as stored in ``DONE.json``/``ERROR.json`` and shown in the table."""
    return {
        "patient": job.patient,
        "status": status,
        "key": job.key,
        "seed": job.seed,
        "error": error,
        "summary": summary or {},
    }


def _jsonable(value: Any) -> Any:
    """`value` with NumPy/JAX scalars and arrays turned into plain Python for JSON."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, str | bool | int | float) or value is None:
        return value
    array = np.asarray(value)
    return array.item() if array.ndim == 0 else array.tolist()
