"""Executing a stored notebook in tests: checked to be stored without outputs, run in a fresh
kernel with a probe cell appended (in memory only) that prints what the kernel ended with."""

import json
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def execute_with_probe(path: Path, tmp_path: Path, probe: str, timeout: int) -> tuple[list, dict]:
    """Execute the notebook stored at `path` (checked to be stored without outputs) with a
    probe cell appended; returns the outputs of its own cells and the probe's JSON."""
    notebook = nbformat.read(path, as_version=4)
    assert not any(cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")
    notebook.cells.append(nbformat.v4.new_code_cell(probe))
    NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()  # raises CellExecutionError on the first failing cell
    *cells, probe_cell = [cell for cell in notebook.cells if cell.cell_type == "code"]
    printed = "".join(o.get("text", "") for o in probe_cell.outputs if o.output_type == "stream")
    return [output for cell in cells for output in cell.outputs], json.loads(printed)
