"""bayes_gmm.select: the BIC/ICL grid over k and the covariance type."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn.datasets import load_iris

from bayes_gmm import COVARIANCE_FAMILIES, MapEM, get_family, select
from bayes_gmm.em.selection import TABLE_COLUMNS, SelectionResult, cell_seeds

TYPES = tuple(COVARIANCE_FAMILIES)  # the default: every registered model, as mclust fits all 14


def three_blobs(rng, n=600):
    """Three well-separated 2-D components with different shapes."""
    centers = np.array([[0.0, 0.0], [9.0, 0.0], [0.0, 9.0]])
    scales = np.array([[1.0, 0.5], [0.7, 1.2], [1.0, 1.0]])
    labels = rng.integers(0, 3, size=n)
    return centers[labels] + rng.normal(size=(n, 2)) * scales[labels]


@pytest.fixture(scope="module")
def blobs():
    return three_blobs(np.random.default_rng(7))


@pytest.fixture(scope="module")
def blobs_result(blobs):
    return select(blobs, k=range(1, 7), random_state=0)


def test_picks_three_components_on_three_blobs(blobs_result):
    assert isinstance(blobs_result, SelectionResult)
    assert blobs_result.best_params_["k"] == 3
    best = blobs_result.best_estimator_
    assert isinstance(best, MapEM) and best.k == 3
    assert best.covariance_type == blobs_result.best_params_["covariance_type"]


def test_icl_also_picks_three(blobs):
    result = select(blobs, k=range(2, 5), covariance_types=("full", "diag"), criterion="icl", random_state=0)
    assert result.best_params_["k"] == 3
    assert result.criterion == "icl"


def test_table_is_tidy(blobs_result):
    table = blobs_result.table
    assert isinstance(table, pd.DataFrame)
    assert list(table.columns) == list(TABLE_COLUMNS)
    assert len(table) == 6 * len(TYPES)
    assert set(table["covariance_type"]) == set(TYPES)
    assert list(dict.fromkeys(table["covariance_type"])) == list(TYPES)  # default: the registry's order
    assert table["error"].isna().all()
    assert table["converged"].all()
    assert (table["icl"] >= table["bic"] - 1e-9).all()  # -2 sum log r >= 0
    # k = 1: every covariance type but spherical/diag reduces to one Gaussian, responsibilities 1
    one = table[table["k"] == 1]
    np.testing.assert_allclose(one["icl"], one["bic"])
    best_row = table.loc[table["bic"].idxmin()]
    assert (best_row["k"], best_row["covariance_type"]) == tuple(blobs_result.best_params_.values())


def test_iris_best_entry_is_stable_across_random_states():
    X = load_iris().data
    bests = set()
    for seed in (0, 1, 2):
        result = select(X, k=range(1, 6), random_state=seed)
        row = result.table.loc[result.table["bic"].idxmin()]
        bests.add((result.best_params_["k"], result.best_params_["covariance_type"], round(row["bic"], 4)))
    assert len(bests) == 1, bests
    (k, covariance_type, _), = bests
    assert k in (2, 3)  # mclust's BIC also prefers 2 or 3 groups on iris


def _n_parameters_by_hand(covariance_type, k, d):
    """mclust's nVarParams (volume, shape, orientation each Equal, Variable or I), plus the
    means and the weights."""
    rot = d * (d - 1) // 2  # an orientation
    cov = {
        "full": k * d * (d + 1) // 2,  # VVV
        "tied": d * (d + 1) // 2,  # EEE
        "diag": k * d,  # VVI
        "spherical": k,  # VII
        "EII": 1,
        "EEI": d,
        "VEI": k + (d - 1),
        "EVI": 1 + k * (d - 1),
        "VEE": k + (d - 1) + rot,
        "EVE": 1 + k * (d - 1) + rot,
        "VVE": k + k * (d - 1) + rot,
        "EEV": 1 + (d - 1) + k * rot,
        "VEV": k + (d - 1) + k * rot,
        "EVV": 1 + k * (d - 1 + rot),
    }[covariance_type]
    return k * d + cov + k - 1


def _dense(est, j):
    k, d = est.means_.shape
    return get_family(est.covariance_type).dense(est.covariances_, k, d)[j]


@pytest.mark.parametrize("covariance_type", TYPES)
def test_bic_and_icl_match_their_definitions(covariance_type, rng):
    X = three_blobs(rng, n=150)
    result = select(X, k=[1, 3], covariance_types=[covariance_type], random_state=3)
    n, d = X.shape
    for _, row in result.table.iterrows():
        est = result.estimators_[(row["k"], covariance_type)]
        k = row["k"]
        log_dens = np.column_stack(
            [
                np.log(est.weights_[j]) + multivariate_normal(est.means_[j], _dense(est, j)).logpdf(X)
                for j in range(k)
            ]
        )
        log_lik = logsumexp(log_dens, axis=1)
        log_resp = log_dens - log_lik[:, None]
        p = _n_parameters_by_hand(covariance_type, k, d)
        bic = -2.0 * log_lik.sum() + p * np.log(n)
        icl = bic - 2.0 * log_resp[np.arange(n), np.argmax(log_resp, axis=1)].sum()
        assert row["n_parameters"] == p
        np.testing.assert_allclose(row["log_likelihood"], log_lik.sum(), rtol=1e-10)
        np.testing.assert_allclose(row["bic"], bic, rtol=1e-10)
        np.testing.assert_allclose(row["icl"], icl, rtol=1e-10)
        np.testing.assert_allclose(row["aic"], -2.0 * log_lik.sum() + 2 * p, rtol=1e-10)
        np.testing.assert_allclose(row["log_posterior"], est.log_posterior(X), rtol=1e-9)
        # and the estimator's own methods agree with the table
        np.testing.assert_allclose(est.bic(X), bic, rtol=1e-10)
        np.testing.assert_allclose(est.icl(X), icl, rtol=1e-10)


def test_deterministic_with_random_state(rng):
    X = three_blobs(rng, n=200)
    a = select(X, k=range(1, 4), covariance_types=("full", "spherical"), random_state=11, n_init=2)
    b = select(X, k=range(1, 4), covariance_types=("full", "spherical"), random_state=11, n_init=2)
    pd.testing.assert_frame_equal(a.table, b.table)
    np.testing.assert_array_equal(a.best_estimator_.means_, b.best_estimator_.means_)


def test_parallel_gives_the_same_table(rng):
    X = three_blobs(rng, n=150)
    serial = select(X, k=range(1, 4), covariance_types=("full", "diag"), random_state=5)
    parallel = select(X, k=range(1, 4), covariance_types=("full", "diag"), random_state=5, n_jobs=2)
    pd.testing.assert_frame_equal(serial.table, parallel.table)


def test_cell_seeds_are_those_of_the_registry_order():
    """A cell's seed comes from its type's place in the registry (full, tied, diag, spherical
    first, then mclust's other models); pinned, so that the seeds, hence every fit, stay what
    they were.  mclust's names of the four are the same cells."""
    assert tuple(COVARIANCE_FAMILIES)[:4] == ("full", "tied", "diag", "spherical")
    assert cell_seeds(0, [2], ["VVV", "VII"]) == {(2, "VVV"): 1961512366, (2, "VII"): 517123707}
    assert cell_seeds(0, [1, 2], ["spherical", "diag", "tied", "full"]) == {
        (1, "full"): 3953331965, (1, "tied"): 3613627650, (1, "diag"): 1016617948, (1, "spherical"): 1227846671,
        (2, "full"): 1961512366, (2, "tied"): 1663335698, (2, "diag"): 1902154619, (2, "spherical"): 517123707,
    }


def test_cell_seed_depends_on_the_cell_only():
    small = cell_seeds(4, [2], ["full"])
    large = cell_seeds(4, [1, 2, 3], ["spherical", "diag", "full"])
    assert small[(2, "full")] == large[(2, "full")]
    assert len(set(large.values())) == len(large)
    assert cell_seeds(4, [2], ["full"]) != cell_seeds(5, [2], ["full"])


def test_same_cell_same_fit_in_a_different_grid(rng):
    X = three_blobs(rng, n=150)
    a = select(X, k=[3], covariance_types=["full"], random_state=2)
    b = select(X, k=[1, 2, 3], covariance_types=["diag", "full"], random_state=2)
    np.testing.assert_array_equal(a.estimators_[(3, "full")].means_, b.estimators_[(3, "full")].means_)


def test_a_failing_fit_is_a_row_with_its_reason(rng):
    X = rng.normal(size=(5, 2))
    result = select(X, k=range(1, 8), covariance_types=["spherical"], random_state=0)
    table = result.table.set_index("k")
    assert table.loc[[1, 2, 3, 4, 5], "error"].isna().all()
    for k in (6, 7):
        assert "larger than the number of rows" in table.loc[k, "error"]
        assert np.isnan(table.loc[k, "bic"])
        assert not table.loc[k, "converged"]
    assert result.best_params_["k"] <= 5
    assert (6, "spherical") not in result.estimators_


def test_a_fit_that_raises_does_not_crash_the_grid(rng, monkeypatch):
    X = three_blobs(rng, n=120)
    original = MapEM.fit

    def flaky(self, X, y=None, sample_weight=None):
        if self.covariance_type == "diag" and self.k == 2:
            raise FloatingPointError("boom")
        return original(self, X, y, sample_weight)

    monkeypatch.setattr(MapEM, "fit", flaky)
    result = select(X, k=[1, 2], covariance_types=["full", "diag"], random_state=0)
    errors = result.table.set_index(["k", "covariance_type"])["error"]
    assert errors[(2, "diag")] == "FloatingPointError: boom"
    assert errors.drop((2, "diag")).isna().all()


def test_every_fit_failing_raises(rng):
    X = rng.normal(size=(3, 2))
    with pytest.raises(ValueError, match="every fit of the grid failed"):
        select(X, k=[5, 6], covariance_types=["full"])


def test_no_convergence_is_reported_not_raised(rng):
    X = three_blobs(rng, n=150)
    result = select(X, k=[3], covariance_types=["spherical"], random_state=0, max_iter=1, tol=0.0)
    row = result.table.iloc[0]
    assert not row["converged"] and row["error"] is None and row["n_iter"] == 1


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"criterion": "aicc"}, ValueError, "criterion"),
        ({"covariance_types": ["full", "XYZ"]}, ValueError, "unknown covariance type"),
        ({"covariance_types": []}, ValueError, "empty"),
        ({"k": []}, ValueError, "k is empty"),
        ({"k": [0, 1]}, ValueError, "at least 1"),
        ({"k": [1.5]}, TypeError, "integers"),
        ({"k": "3"}, TypeError, "iterable"),
        ({"random_state": "x"}, TypeError, "random_state"),
        ({"random_state": 3, "covariance_type": "full"}, TypeError, "covariance_type"),
        ({"not_an_argument": 1}, TypeError, "not_an_argument"),
    ],
)
def test_bad_arguments(kwargs, error, match, rng):
    with pytest.raises(error, match=match):
        select(rng.normal(size=(20, 2)), **kwargs)


def test_bad_data_fails_once_up_front():
    X = np.array([[1.0, 2.0], [np.nan, 1.0], [3.0, 4.0]])
    with pytest.raises(ValueError, match="NaN"):
        select(X, k=[1, 2])


def test_plot_one_line_per_covariance_type(blobs_result):
    fig, ax = plt.subplots()
    try:
        returned = blobs_result.plot(ax=ax)
        assert returned is ax
        labels = [line.get_label() for line in ax.get_lines()]
        # mclust's names (scikit-learn's beside them), mclust's colours and symbols
        names = {"VVV (full)", "EEE (tied)", "VVI (diag)", "VII (spherical)", "EII", "VEV", "EVV"}
        assert names <= set(labels) and len(labels) == len(TYPES) + 1
        assert any(label.startswith("best: k=3") for label in labels)
        full = ax.get_lines()[labels.index("VVV (full)")]
        lines = dict(zip(labels, ax.get_lines(), strict=True))
        style = {name: (lines[name].get_color(), lines[name].get_marker(), lines[name].get_markerfacecolor())
                 for name in ("VVV (full)", "EII", "EEE (tied)")}
        assert style == {"VVV (full)": ("#CC0000", "s", "none"), "EII": ("gray", "^", "gray"),
                         "EEE (tied)": ("#597DC3", "s", "#597DC3")}
        np.testing.assert_array_equal(full.get_xdata(), np.arange(1, 7))
        assert "BIC" in ax.get_ylabel()
        blobs_result.plot(ax=ax, criterion="icl")
        assert "ICL" in ax.get_ylabel()
        with pytest.raises(ValueError, match="criterion"):
            blobs_result.plot(ax=ax, criterion="xyz")
    finally:
        plt.close(fig)
    ax = blobs_result.plot()  # makes its own figure
    plt.close(ax.figure)


def test_progress_bar_goes_to_stderr_never_stdout(rng, capsys):
    X = three_blobs(rng, n=90)
    select(X, k=[1, 2], covariance_types=["spherical"], random_state=0, progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "bayes_gmm.select" in captured.err
    select(X, k=[1, 2], covariance_types=["spherical"], random_state=0)  # off by default
    assert capsys.readouterr().err == ""


def test_accepts_a_dataframe_and_lazy_import(rng):
    import bayes_gmm

    X = pd.DataFrame(three_blobs(rng, n=90), columns=["a", "b"])
    result = bayes_gmm.select(X, k=[1, 2], covariance_types="full", random_state=0)
    assert len(result.table) == 2
    assert "best=" in repr(result)
    assert list(result.best_estimator_.feature_names_in_) == ["a", "b"]
