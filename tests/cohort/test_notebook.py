"""The cohort notebook executes top to bottom (kernel ``python3``) without an error."""

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).parents[2] / "notebooks" / "04_cohort.ipynb"


def test_cohort_notebook_runs_and_is_stored_without_outputs(tmp_path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert not any(cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")
    NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()  # raises CellExecutionError on the first failing cell
    assert (tmp_path / "cohort_demo" / "out" / "cohort.parquet").is_file()
