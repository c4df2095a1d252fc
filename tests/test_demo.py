"""bayes-gmm demo: the whole story into a folder (slow: it samples the posterior)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from conftest import convergence_warnings  # noqa: E402

from bayes_gmm import (  # noqa: E402
    MapEM,
    make_seed_problem,
    seed_problem_holdout,  # noqa: E402
)
from bayes_gmm.cli.demo import _markdown_table, run_demo  # noqa: E402


def test_holdout_comes_from_the_seed_blobs(seed_problem):
    X, _ = seed_problem
    X_new = seed_problem_holdout(400, random_state=3)
    assert X_new.shape == (400, 2)
    assert not np.isin(X_new, X).any()  # fresh points
    est = MapEM(10, random_state=0).fit(X)
    # the same generating process: held-out points are about as likely as the training points
    assert abs(est.score(X_new) - est.score(X)) < 0.3
    np.testing.assert_array_equal(X_new, seed_problem_holdout(400, random_state=3))


def test_markdown_table():
    df = pd.DataFrame({"a": [1.23456, 2.0], "ok": [True, False]}, index=pd.Index(["x", "y"], name="p"))
    text = _markdown_table(df)
    lines = text.splitlines()
    assert lines[0] == "| p | a | ok |"
    assert lines[2] == "| x | 1.235 | yes |"
    assert lines[3] == "| y | 2 | **no** |"


@pytest.mark.slow
def test_demo_writes_the_report(tmp_path, capsys):
    lines = []
    with convergence_warnings() as warned:  # 2 x (150 + 100) draws: too short to converge
        out = run_demo(tmp_path / "demo", seed=0, echo=lines.append, draws=100, tune=150, chains=2,
                       progressbar=False)
    assert all("R-hat" in message or "ESS" in message for message in warned)
    assert capsys.readouterr().out == ""  # the library never prints: narration goes to echo
    text = "\n".join(lines)
    assert "FAILED at EM iteration" in text and "R-hat" in text and "Report written" in text
    report = (out / "report.md").read_text()
    for heading in ("## 1. Plain EM", "## 2. MAP-EM", "## 3. The full posterior", "## 4. Prediction"):
        assert heading in report
    assert "fails at EM iteration 5" in report
    figures = sorted(out.glob("*.png"))
    assert len(figures) >= 7
    for path in figures:
        assert f"]({path.name})" in report
        image = plt.imread(path)
        assert image[..., :3].std() > 0.01, path.name
    table = pd.read_csv(out / "comparison.csv", index_col=0)
    X, _ = make_seed_problem()
    assert len(table) == 10 + 20 + 30
    assert set(pd.read_csv(out / "predictive.csv", index_col=0).index) == {"map", "posterior", "difference"}
