"""bayes_gmm.plotting.figures: every plot draws on 1-D, 2-D and higher-D data and returns its axes."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from _posterior_fakes import fake_posterior  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402

from bayes_gmm import MapEM, plotting  # noqa: E402
from em_baseline import PlainEM, SingularCovarianceError, classic_start  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _data(d, rng, n=150):
    centers = np.zeros((3, d))
    centers[1, 0] = 6.0
    centers[2, -1] = -6.0 if d == 1 else 6.0
    labels = rng.integers(0, 3, size=n)
    return centers[labels] + rng.normal(size=(n, d))


@pytest.fixture(scope="module", params=[1, 2, 3])
def problem(request):
    rng = np.random.default_rng(request.param)
    X = _data(request.param, rng)
    est = MapEM(3, random_state=0).fit(X)
    idata = fake_posterior(est, rng, chains=2, draws=50, noise=0.05)
    return X, est, idata


def _not_blank(fig, path):
    fig.savefig(path, dpi=60)
    image = plt.imread(path)
    assert image.ndim == 3 and image.shape[0] > 50 and image.shape[1] > 50
    rgb = image[..., :3]
    assert rgb.std() > 0.01, "the saved figure is blank"
    assert np.mean(rgb.min(axis=-1) < 0.9) > 0.005, "hardly anything is drawn"


@pytest.mark.parametrize(
    "draw",
    [
        lambda X, est, idata, ax: plotting.plot_clusters(est, X, ax=ax),
        lambda X, est, idata, ax: plotting.plot_uncertainty(est, X, ax=ax),
        lambda X, est, idata, ax: plotting.plot_uncertainty(est, X, ax=ax, responsibilities=est.predict_proba(X)),
        lambda X, est, idata, ax: plotting.plot_density(est, X, ax=ax),
        lambda X, est, idata, ax: plotting.plot_density(est, None, ax=ax),
        lambda X, est, idata, ax: plotting.plot_objective(est, ax=ax),
        lambda X, est, idata, ax: plotting.plot_posterior_ellipses(est, idata, X, ax=ax, n_draws=10),
    ],
    ids=["clusters", "uncertainty", "uncertainty-given", "density", "density-no-data", "objective", "posterior-ellipses"],
)
def test_matplotlib_plots(problem, draw, tmp_path):
    X, est, idata = problem
    fig, ax = plt.subplots()
    out = draw(X, est, idata, ax)
    assert out is ax
    _not_blank(fig, tmp_path / "plot.png")
    # without ax, a new figure
    assert isinstance(draw(X, est, idata, None), Axes)


@pytest.mark.parametrize("kind", ["forest", "dist"])
def test_posterior_marginals(problem, kind, tmp_path):
    X, est, idata = problem
    pc = plotting.plot_posterior_marginals(est, idata, var_names=["weights", "means"], kind=kind)
    fig = pc.viz["figure"].item()
    _not_blank(fig, tmp_path / "marginals.png")


@pytest.mark.parametrize("kind", ["forest", "dist"])
def test_posterior_marginals_subset(problem, kind, tmp_path):
    X, est, idata = problem
    pc = plotting.plot_posterior_marginals(est, idata, var_names=["covariances"], kind=kind,
                                           coords={"component": [0, 1]})
    _not_blank(pc.viz["figure"].item(), tmp_path / "subset.png")


def test_forest_marks_the_map(problem):
    X, est, idata = problem
    pc = plotting.plot_posterior_marginals(est, idata, var_names=["weights"])
    target = pc.get_target("weights", {"component": 0, "column": "forest"})
    xs = sorted(float(line.get_xdata()[0]) for line in target.lines if line.get_marker() == "D")
    np.testing.assert_allclose(xs, np.sort(est.weights_))


@pytest.mark.parametrize("kind", ["rank", "trace"])
def test_chains(problem, kind, tmp_path):
    X, est, idata = problem
    pc = plotting.plot_chains(idata, var_names=["weights"], kind=kind)
    _not_blank(pc.viz["figure"].item(), tmp_path / "chains.png")


def test_objective_marks_the_baseline_failure(seed_problem):
    X, _ = seed_problem
    start = classic_start(X, 10, random_state=0)
    baseline = PlainEM(10, **start)
    with pytest.raises(SingularCovarianceError):
        baseline.fit(X)
    est = MapEM(10, **start).fit(X)
    ax = plotting.plot_objective(est, baseline)
    labels = [line.get_label() for line in ax.lines]
    assert any("singular covariance at iteration" in label for label in labels)
    np.testing.assert_array_equal(ax.lines[1].get_ydata(), baseline.log_likelihoods_)
    # an array works too
    ax2 = plotting.plot_objective(est, baseline.log_likelihoods_)
    assert len(ax2.lines) == 2


def test_higher_dimension_uses_the_chosen_columns():
    rng = np.random.default_rng(0)
    X = _data(4, rng)
    est = MapEM(3, random_state=0).fit(X)
    ax = plotting.plot_clusters(est, X, dims=(3, 1))
    assert ax.get_xlabel() == "x3" and ax.get_ylabel() == "x1"
    # the ellipses are the exact marginals: the centre of each is the mean on those columns
    centres = sorted(tuple(np.round(p.center, 8)) for p in ax.patches)[::2]
    expected = sorted(tuple(np.round(m, 8)) for m in est.means_[:, [3, 1]])
    assert centres == expected


@pytest.fixture(scope="module")
def fitted_3d():
    X = _data(3, np.random.default_rng(3))
    return X, MapEM(3, random_state=0).fit(X)


@pytest.mark.parametrize("dims", [(0, 0), (0, 5), ("a", 1), (1,)])
def test_bad_dims_raise(fitted_3d, dims):
    X, est = fitted_3d  # dims picks two columns of d >= 2 data (1-D data has nothing to pick)
    for plot in (plotting.plot_clusters, plotting.plot_uncertainty, plotting.plot_density):
        with pytest.raises(ValueError, match="dims"):
            plot(est, X, dims=dims)


def test_wrong_X_raises(problem):
    X, est, idata = problem
    with pytest.raises(ValueError, match="shape"):
        plotting.plot_clusters(est, np.zeros((5, X.shape[1] + 1)))


def test_bad_kind_raises(problem):
    X, est, idata = problem
    with pytest.raises(ValueError, match="kind"):
        plotting.plot_chains(idata, kind="nope")
    with pytest.raises(ValueError, match="kind"):
        plotting.plot_posterior_marginals(est, idata, kind="nope")


def test_assignment_uncertainty():
    r = np.array([[1.0, 0.0], [0.5, 0.5], [0.8, 0.2]])
    np.testing.assert_allclose(plotting.assignment_uncertainty(r), [0.0, 0.5, 0.2])
