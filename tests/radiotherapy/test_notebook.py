"""The radiotherapy notebook executes top to bottom (kernel ``python3``)."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).parents[2] / "notebooks" / "03_radiotherapy_bands.ipynb"


@pytest.mark.slow
def test_notebook_runs(tmp_path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    assert not any(
        output.get("output_type") == "error"
        for cell in notebook.cells
        for output in cell.get("outputs", [])
    )
