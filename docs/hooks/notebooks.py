"""MkDocs hook: execute the notebooks at small size for the site, leaving the stored ones alone.

Every ``notebooks/*.ipynb`` runs once per build with ``BAYESTUMOR_NOTEBOOK_SMALL=1`` (as in the
tests), each in a kernel and a temporary working folder of its own (the notebooks write files
relative to it), all at the same time and in a background thread while MkDocs renders the other
pages. The executed copies are handed to mkdocs-jupyter in place of the stored, output-free ones;
a failing cell fails the build. ``BAYESTUMOR_DOCS_EXECUTE=0`` skips execution (pages without
outputs, for quick editing).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import mkdocs.plugins
import nbformat
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files
from nbclient import NotebookClient

log = logging.getLogger("mkdocs.hooks.notebooks")

NOTEBOOK_FOLDER = "notebooks"  # below the repository root and, in the site, below docs_dir
CELL_TIMEOUT_S = 900


class _Execution:
    """The notebooks of one build, executing in a background thread."""

    def __init__(self, jobs: list[tuple[Path, Path, Path]]):
        self.jobs = jobs
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="docs-notebooks", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            asyncio.run(self._execute_all())
        except BaseException as error:  # re-raised in the main thread by wait()
            self.error = error

    async def _execute_all(self) -> None:
        await asyncio.gather(*(self._execute(*job) for job in self.jobs))

    async def _execute(self, source: Path, target: Path, workdir: Path) -> None:
        notebook = nbformat.read(source, as_version=4)
        client = NotebookClient(
            notebook,
            timeout=CELL_TIMEOUT_S,
            kernel_name="python3",
            resources={"metadata": {"path": str(workdir)}},
        )
        start = time.perf_counter()
        await client.async_execute(env=_kernel_environment())  # CellExecutionError on failure
        nbformat.write(notebook, target)
        log.info("executed %s in %.0f s", source.name, time.perf_counter() - start)

    def wait(self) -> None:
        self.thread.join()
        if self.error is not None:
            raise PluginError(f"a notebook failed while building the docs:\n{self.error}")


def _kernel_environment() -> dict[str, str]:
    environment = dict(os.environ)
    environment["BAYESTUMOR_NOTEBOOK_SMALL"] = "1"
    environment.setdefault("JAX_PLATFORMS", "cpu")
    # CI exports MPLBACKEND=Agg; in a kernel it would swallow every figure.
    environment["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    # tqdm.auto's note that ipywidgets is missing: about the docs kernel, not the notebook.
    quiet_tqdm = "ignore:IProgress not found"
    previous = environment.get("PYTHONWARNINGS")
    environment["PYTHONWARNINGS"] = f"{previous},{quiet_tqdm}" if previous else quiet_tqdm
    return environment


_scratch: list[Path] = []
_execution: _Execution | None = None
_executed_uris: set[str] = set()


@mkdocs.plugins.event_priority(50)  # before mkdocs-jupyter wraps the notebook files
def on_files(files: Files, config) -> Files:
    global _execution
    root = Path(config["config_file_path"]).parent
    sources = sorted((root / NOTEBOOK_FOLDER).glob("*.ipynb"))
    if not sources:
        return files
    scratch = Path(tempfile.mkdtemp(prefix="bayestumor-docs-"))
    _scratch.append(scratch)
    (scratch / NOTEBOOK_FOLDER).mkdir()
    targets = [scratch / NOTEBOOK_FOLDER / source.name for source in sources]
    if os.environ.get("BAYESTUMOR_DOCS_EXECUTE", "1") == "0":
        for source, target in zip(sources, targets, strict=True):
            shutil.copyfile(source, target)
    else:
        jobs = []
        for source, target in zip(sources, targets, strict=True):
            workdir = scratch / f"run-{source.stem}"
            workdir.mkdir()
            jobs.append((source, target, workdir))
        log.info("executing %d notebooks (BAYESTUMOR_NOTEBOOK_SMALL=1)", len(jobs))
        _execution = _Execution(jobs)
    for target in targets:
        src_uri = f"{NOTEBOOK_FOLDER}/{target.name}"
        _executed_uris.add(src_uri)
        existing = files.get_file_from_path(src_uri)
        if existing is not None:
            files.remove(existing)
        # Appended last, so MkDocs renders every other page before it needs a notebook.
        files.append(File(src_uri, str(scratch), config["site_dir"], config["use_directory_urls"]))
    return files


@mkdocs.plugins.event_priority(50)  # before mkdocs-jupyter reads the notebook
def on_pre_page(page, config, files):
    global _execution
    if _execution is not None and page.file.src_uri in _executed_uris:
        execution, _execution = _execution, None
        execution.wait()
    return page


def on_post_build(config) -> None:
    _executed_uris.clear()
    while _scratch:
        shutil.rmtree(_scratch.pop(), ignore_errors=True)


def on_build_error(error) -> None:
    on_post_build(None)
