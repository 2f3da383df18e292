"""
Runs every notebook in notebooks/ as a test (kernel python3).
"""

import pathlib

import nbformat
import pytest
from conftest import SHARED_DATA
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


class TestNotebooks:
    @pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
    def test_runs(self, path, tmp_path, monkeypatch):
        """
        The notebook executes without error.
        """
        nb = nbformat.read(path, as_version=4)
        # Notebooks find the shared data sets through this variable when
        # they do not run from notebooks/ in a checkout beside shared/.
        uses_shared = any("SHARED /" in c.source for c in nb.cells)
        if uses_shared and not SHARED_DATA.is_dir():
            pytest.skip(f"shared data not found at {SHARED_DATA}")
        monkeypatch.setenv("CRMFLOW_SHARED_DATA", str(SHARED_DATA))
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
