"""The README's usage example and the docstring examples run as written."""

import doctest
import re
from pathlib import Path

import pytest

import bayes_gmm.map_em
import bayes_gmm.prior

ROOT = Path(__file__).resolve().parents[1]


def test_readme_usage_example_runs(capsys):
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "the README has no python example"
    exec(compile(blocks[0], "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "EM iteration" in out and "True" in out


@pytest.mark.parametrize("module", [bayes_gmm.prior, bayes_gmm.map_em])
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0


def test_readme_selection_example_runs(tmp_path, monkeypatch):
    import bayes_gmm

    text = (ROOT / "README.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", text, flags=re.S) if "bayes_gmm.select(" in b)
    monkeypatch.chdir(tmp_path)
    X, _ = bayes_gmm.make_seed_problem()
    namespace = {"bayes_gmm": bayes_gmm, "X": X}
    exec(compile(block, "README.md", "exec"), namespace)
    assert (tmp_path / "model.json").exists()
    assert namespace["best"].k >= 9
