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

    @pytest.mark.parametrize(
        "path", [p for p in NOTEBOOKS if "CRMFLOW_SHARED_DATA" in
                 p.read_text(encoding="utf-8")], ids=lambda p: p.name)
    def test_missing_data_names_the_variable(self, path, tmp_path,
                                             monkeypatch):
        """
        Pointed at an empty folder, a notebook that needs the shared data
        stops at once with a FileNotFoundError that says what to set.
        """
        from nbclient.exceptions import CellExecutionError

        nb = nbformat.read(path, as_version=4)
        empty = tmp_path / "empty"
        empty.mkdir()
        monkeypatch.setenv("CRMFLOW_SHARED_DATA", str(empty))
        client = NotebookClient(
            nb, timeout=600, kernel_name="python3",
            resources={"metadata": {"path": str(tmp_path)}},
        )

        with pytest.raises(CellExecutionError) as e:
            client.execute()

        assert "FileNotFoundError" in str(e.value)
        assert str(empty) in str(e.value)
        assert "set CRMFLOW_SHARED_DATA" in str(e.value)
