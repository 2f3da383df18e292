"""
Runs every notebook in notebooks/ as a test (kernel python3).
"""

import pathlib

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


class TestNotebooks:
    @pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
    def test_runs(self, path, tmp_path):
        """
        The notebook executes without error.
        """
        nb = nbformat.read(path, as_version=4)
        client = NotebookClient(
            nb, timeout=600, kernel_name="python3",
            resources={"metadata": {"path": str(tmp_path)}},
        )

        client.execute()

        assert all(
            o.get("output_type") != "error"
            for c in nb.cells if c.cell_type == "code"
            for o in c.get("outputs", [])
        )
