"""Build the story notebooks from their jupytext sources and execute them (outputs are committed).

    .venv/bin/python notebooks/build_notebooks.py            # build and execute 01, 02 and 03
    .venv/bin/python notebooks/build_notebooks.py 01 03      # only the one(s) named
    .venv/bin/python notebooks/build_notebooks.py --no-execute

The cells live in ``notebooks/NN_name.py`` (jupytext percent format: ``# %%`` code cells and
``# %% [markdown]`` cells); edit them there, not in the .ipynb, then rebuild. The test suite
checks that every committed .ipynb has the cells of its source.
``BAYES_GMM_FAST=1`` in the environment shrinks the posterior sampling (the notebook reads it).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import jupytext
import nbformat

HERE = Path(__file__).resolve().parent
SOURCES = sorted(HERE.glob("[0-9][0-9]_*.py"))
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def build(source: Path) -> nbformat.NotebookNode:
    """The notebook of a percent file, without outputs, with stable cell ids."""
    nb = jupytext.read(source)
    nb.metadata.pop("jupytext", None)  # the .ipynb is not paired; keep its metadata plain
    nb.metadata.setdefault("kernelspec", KERNELSPEC)
    nb.metadata.setdefault("language_info", {"name": "python"})
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i:02d}"  # deterministic, so a rebuild does not rewrite every id
    return nb


def execute(nb: nbformat.NotebookNode, timeout: int = 900) -> nbformat.NotebookNode:
    from nbclient import NotebookClient

    os.environ.pop("MPLBACKEND", None)  # a kernel started with Agg would drop every figure
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(HERE)}}).execute()
    return nb


def main(argv: list[str]) -> int:
    run = "--no-execute" not in argv
    wanted = [a for a in argv if not a.startswith("--")]
    unknown = [w for w in wanted if not any(s.stem.startswith(w) for s in SOURCES)]
    if unknown:
        print(f"no notebook source matches {unknown}; have {[s.stem for s in SOURCES]}", file=sys.stderr)
        return 2
    for source in SOURCES:
        if wanted and not any(source.stem.startswith(w) for w in wanted):
            continue
        nb = build(source)
        if run:
            execute(nb)
        nbformat.validate(nb)
        nbformat.write(nb, source.with_suffix(".ipynb"))
        print("wrote", source.with_suffix(".ipynb").name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
