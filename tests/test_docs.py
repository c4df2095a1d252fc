"""The README's usage example and the docstring examples run as written."""

import doctest
import re
from pathlib import Path

import pytest

import bayes_gmm.em.map_em
import bayes_gmm.model.prior

ROOT = Path(__file__).resolve().parents[1]


_PRINTED = re.compile(r"^(?P<indent>\s*)print\((?P<args>.*)\)\s+# (?P<expected>.+)$")


def test_readme_usage_example_prints_what_it_says(capsys):
    """Every ``print(...)  # value`` of the README's first example prints that value (a trailing
    ``...`` means "starts with"), as a user running it would see."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "the README has no python example"
    checks = []

    def rewrite(line):
        match = _PRINTED.match(line)
        if not match:
            return line
        expected = match["expected"].strip().strip('"')
        checks.append(expected)
        return f"{match['indent']}_printed(({match['args']},), {expected!r})"

    seen = []

    def printed(values, expected):
        shown = " ".join(str(v) for v in values)
        seen.append(expected)
        prefix = expected[:-3].rstrip() if expected.endswith("...") else None
        if prefix is None:
            assert shown == expected, (shown, expected)
        else:
            assert shown.startswith(prefix), (shown, expected)

    code = "\n".join(rewrite(line) for line in blocks[0].splitlines())
    exec(compile(code, "README.md", "exec"), {"_printed": printed})
    assert len(checks) >= 3 and seen == checks  # every printed value was checked


@pytest.mark.parametrize("module", [bayes_gmm.model.prior, bayes_gmm.em.map_em])
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
