"""Every notebook in notebooks/ is built from its jupytext source and runs top to bottom.

BAYES_GMM_FAST=1 shrinks the sampling.
"""

from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def test_the_story_notebooks_exist():
    names = {path.name for path in NOTEBOOKS}
    assert {"01_seed_problem.ipynb", "02_posterior.ipynb"} <= names


def test_notebooks_are_built_from_their_percent_sources():
    """The cells live in notebooks/NN_name.py; the committed .ipynb has exactly those cells."""
    jupytext = pytest.importorskip("jupytext")
    nbformat = pytest.importorskip("nbformat")
    sources = {path.with_suffix(".ipynb") for path in NOTEBOOKS[0].parent.glob("[0-9][0-9]_*.py")}
    assert sources == set(NOTEBOOKS), "every notebook needs its percent source and vice versa"
    for path in NOTEBOOKS:
        want = [(cell.cell_type, cell.source) for cell in jupytext.read(path.with_suffix(".py")).cells]
        have = [(cell.cell_type, cell.source) for cell in nbformat.read(path, as_version=4).cells]
        assert have == want, (f"{path.name} differs from {path.with_suffix('.py').name}: "
                              "rebuild it with notebooks/build_notebooks.py")


def test_committed_notebooks_have_outputs():
    nbformat = pytest.importorskip("nbformat")
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        code = [cell for cell in nb.cells if cell.cell_type == "code"]
        assert code, path.name
        assert all(cell.get("execution_count") for cell in code), f"{path.name} is not executed"
        errors = [o for cell in code for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, f"{path.name} was committed with an error output"
        images = [o for cell in code for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
        assert images, f"{path.name} has no figure"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("BAYES_GMM_FAST", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute()  # raises CellExecutionError on the first failing cell
