"""mclust's constrained models (EII ... EVV): structure, the M-step as the exact maximiser within
the model, the solvers of bayes_gmm.model.families.decomposition, and what they do not do
(no PyMC form).  Their agreement with mclust itself is tests/test_mclust.py."""

import warnings

import numpy as np
import pytest
from conftest import UNEQUAL_SCALES, make_blobs3
from scipy.stats import multivariate_normal

from bayes_gmm import COVARIANCE_FAMILIES, MapEM, NIWPrior, get_family, select
from bayes_gmm.model.families import decomposition, mclust_names

CONSTRAINED = [name for name, family in COVARIANCE_FAMILIES.items() if not family.posterior_form]


def test_all_fourteen_mclust_models_are_registered():
    assert list(mclust_names()) == ["EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE", "VEE", "EVE", "VVE", "EEV",
                                    "VEV", "EVV", "VVV"]
    assert sorted(CONSTRAINED) == sorted(["EII", "EEI", "VEI", "EVI", "VEE", "EVE", "VVE", "EEV", "VEV", "EVV"])
    for alias, name in (("VVV", "full"), ("EEE", "tied"), ("VVI", "diag"), ("VII", "spherical")):
        assert get_family(alias) is get_family(name)
    with pytest.raises(ValueError, match="covariance_type must be one of .*'EII'.*'VVV'"):
        get_family("VVX")


def _decompose(cov):
    values, vectors = np.linalg.eigh(cov)
    values, vectors = values[:, ::-1], vectors[:, :, ::-1]
    volume = np.exp(np.mean(np.log(values), axis=1))
    return volume, values / volume[:, None], vectors


def _random_rotation(rng, d, size):
    skew = rng.normal(scale=size, size=(d, d))
    skew = skew - skew.T
    w, v = np.linalg.eig(skew)
    return np.real(v @ np.diag(np.exp(w)) @ np.linalg.inv(v))


def _perturbed(cov, letters, rng, size=1e-3):
    """A covariance of the same model near ``cov``: volume, shape and orientation moved, each
    the same for every component where the model shares it (E), left alone where it is I."""
    k, d, _ = cov.shape
    vol_letter, shape_letter, orient_letter = letters

    def noise(shape):
        return rng.normal(scale=size, size=shape)

    def step(letter, shape):  # a factor shared by the components (E) or not (V)
        if letter == "I":
            return np.ones(shape)
        return np.exp(np.broadcast_to(noise(shape[1:]), shape) if letter == "E" else noise(shape))

    if orient_letter == "I":  # diagonal models: move the variances (volume times shape)
        values = np.diagonal(cov, axis1=1, axis2=2)
        shape = values * step(shape_letter, (k, d))
        shape = shape / np.exp(np.mean(np.log(shape), axis=1))[:, None]
        volume = np.exp(np.mean(np.log(values), axis=1)) * step(vol_letter, (k, 1))[:, 0]
        return (volume[:, None] * shape)[:, :, None] * np.eye(d)
    volume, shape, vectors = _decompose(cov)
    shape = shape * step(shape_letter, (k, d))
    shape = shape / np.exp(np.mean(np.log(shape), axis=1))[:, None]
    volume = volume * step(vol_letter, (k, 1))[:, 0]
    if orient_letter == "E":
        vectors = _random_rotation(rng, d, size) @ vectors
    else:
        vectors = np.stack([_random_rotation(rng, d, size) @ v for v in vectors])
    return np.einsum("kij,kj,klj->kil", vectors, volume[:, None] * shape, vectors)


def _complete_log_posterior(family, X, resp, weights, means, covariances, prior):
    k, d = means.shape
    dense = family.dense(covariances, k, d)
    loglik = sum(resp[:, j] @ multivariate_normal(means[j], dense[j]).logpdf(X) for j in range(k))
    return loglik + family.log_prior(means, covariances, prior)


def _stored(family, dense):
    if family.covariance_dims == ("component", "feature"):
        return np.diagonal(dense, axis1=1, axis2=2).copy()
    if family.covariance_dims == ("component",):
        return dense[:, 0, 0].copy()
    return dense


@pytest.mark.parametrize("name", CONSTRAINED)
def test_map_step_maximises_the_complete_log_posterior_within_the_model(name, rng, monkeypatch):
    """No covariance of the model near the M-step's (volume, shape, orientation moved as the
    model allows) has a higher complete-data log-posterior, at the M-step's means; and the
    means are the shrunk ones (mclust's EEI keeps the weighted means, as mclust does)."""
    monkeypatch.setattr(decomposition, "ORIENTATION_MAX_SWEEPS", 10_000)  # solve to the end
    family = get_family(name)
    X, _ = make_blobs3(rng, n=90, d=3, spread=3.0)
    resp = rng.dirichlet(np.ones(3), size=90)
    prior = NIWPrior.from_data(X, 3, name)
    stats = family.statistics_from_responsibilities(X, resp)
    means, covariances = family.map_step(stats, prior)
    weights = stats.nk / stats.nk.sum()
    shrunk = (stats.nk[:, None] * stats.xbar + prior.kappa0 * prior.m0) / (stats.nk + prior.kappa0)[:, None]
    np.testing.assert_allclose(means, stats.xbar if name == "EEI" else shrunk, rtol=1e-12)
    best = _complete_log_posterior(family, X, resp, weights, means, covariances, prior)
    dense = family.dense(covariances, 3, 3)
    for _ in range(30):
        other = _stored(family, _perturbed(dense, family.mclust_name, rng))
        value = _complete_log_posterior(family, X, resp, weights, means, other, prior)
        assert value <= best + 1e-10 * abs(best), (name, value - best)


@pytest.mark.parametrize("name", CONSTRAINED)
def test_a_fit_has_the_models_structure_and_never_decreases(name, rng):
    X, labels = make_blobs3(rng, n=240, d=3, spread=4.0)
    est = MapEM(3, covariance_type=name, init_params=labels, tol=1e-10, max_iter=300).fit(X)
    volume, shape, vectors = _decompose(get_family(name).dense(est.covariances_, 3, 3))
    vol_letter, shape_letter, orient_letter = name
    if vol_letter == "E":
        np.testing.assert_allclose(volume, volume[0], rtol=1e-9)
    if shape_letter in "EI":
        np.testing.assert_allclose(shape, np.broadcast_to(shape[0], shape.shape), rtol=1e-7)
    if orient_letter == "E":  # the first component's axes diagonalise every covariance
        rotated = np.einsum("ji,kjl,lm->kim", vectors[0], get_family(name).dense(est.covariances_, 3, 3), vectors[0])
        assert np.max(np.abs(rotated - rotated * np.eye(3))) <= 1e-7 * np.max(np.abs(rotated))
    lp = est.log_posteriors_
    assert np.all(np.diff(lp) >= -1e-9 * np.abs(lp[1:]))
    assert est.log_posterior(X) == pytest.approx(est.log_posterior_, rel=1e-9)
    assert get_family(name).n_parameters(3, 3) < get_family("full").n_parameters(3, 3)


@pytest.mark.parametrize("equal_volume", [True, False])
def test_shared_orientation_solver_finds_the_common_axes(equal_volume, rng):
    """EVE / VVE: scatters that share their axes exactly (different shapes) give those axes back,
    and the objective is no higher than at the axes of the pooled scatter (the start)."""
    d, k = 5, 4
    Q = _random_rotation(rng, d, 1.0)
    diagonals = rng.uniform(0.2, 5.0, size=(k, d))
    S = np.einsum("ij,kj,lj->kil", Q, diagonals, Q) * 100.0
    c = np.full(k, 100.0)
    cov = decomposition.common_orientation(S, c, equal_volume, max_sweeps=1000)
    rotated = np.einsum("ji,kjl,lm->kim", Q, cov, Q)
    assert np.max(np.abs(rotated - rotated * np.eye(d))) <= 1e-9 * np.max(np.abs(rotated))
    if not equal_volume:  # VVE with shared axes is the unconstrained fit per component: S_k / c_k
        np.testing.assert_allclose(cov, S / c[:, None, None], rtol=1e-9, atol=1e-12)

    def objective(cov):
        return float(np.sum(c * np.linalg.slogdet(cov)[1] + np.einsum("kij,kji->k", np.linalg.inv(cov), S)))

    start = decomposition.common_orientation(S, c, equal_volume, max_sweeps=0)
    assert objective(cov) <= objective(start) + 1e-12 * abs(objective(start))


def test_alternating_solvers_reach_their_fixed_point(rng):
    """VEI and VEE: the result satisfies both of its update equations."""
    k, d = 4, 3
    s = rng.uniform(1.0, 10.0, size=(k, d))
    c = rng.uniform(5.0, 50.0, size=k)
    out = decomposition.variable_volume_equal_shape(s, c)
    lam = np.exp(np.mean(np.log(out), axis=1))
    B = out[0] / lam[0]
    np.testing.assert_allclose(out / lam[:, None], np.broadcast_to(B, out.shape), rtol=1e-12)
    np.testing.assert_allclose(lam, np.sum(s / B, axis=1) / (d * c), rtol=1e-12)
    A = rng.normal(size=(k, d, d))
    S = A @ A.transpose(0, 2, 1) + np.eye(d)
    out = decomposition.variable_volume_equal_matrix(S, c)
    lam = np.exp(np.mean(np.log(np.linalg.eigvalsh(out)), axis=1))
    C = out[0] / lam[0]
    np.testing.assert_allclose(out / lam[:, None, None], np.broadcast_to(C, out.shape), rtol=1e-11)
    np.testing.assert_allclose(lam, np.einsum("ij,kji->k", np.linalg.inv(C), S) / (d * c), rtol=1e-11)


def test_no_posterior_form_is_a_clear_not_implemented_error():
    from bayes_gmm.bayes.posterior import PosteriorSampler

    with pytest.raises(NotImplementedError, match=r"'EEV' has no posterior \(PyMC\) form yet.*EII, EEI"):
        PosteriorSampler("EEV", 2, 2)
    PosteriorSampler("VVV", 2, 2)  # mclust's name of full has one


def test_select_takes_mclusts_names_and_fits_each_model_once(rng):
    X, _ = make_blobs3(rng, n=150, d=2)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", UNEQUAL_SCALES)
        result = select(X, k=[2, 3], covariance_types=["VVV", "full", "EEV", "EII"], random_state=0)
    assert list(dict.fromkeys(result.table["covariance_type"])) == ["VVV", "EEV", "EII"]
    assert result.table["error"].isna().all()


def test_command_line_fits_and_selects_mclusts_models(tmp_path, rng):
    import json

    import matplotlib

    matplotlib.use("Agg")
    from bayes_gmm.cli.main import main

    X, _ = make_blobs3(rng, n=150, d=2)
    path = tmp_path / "data.csv"
    np.savetxt(path, X, delimiter=",", header="a,b", comments="")
    assert main(["fit", str(path), "--k", "3", "--covariance-type", "VEV", "--out", str(tmp_path / "fit")]) == 0
    saved = json.loads((tmp_path / "fit" / "model.json").read_text())
    assert "VEV" in json.dumps(saved)
    code = main(["select", str(path), "--k", "2-3", "--covariance-types", "EII,VVE,VVV", "--out", str(tmp_path / "sel")])
    assert code == 0
    table = (tmp_path / "sel" / "selection.csv").read_text()
    assert all(name in table for name in ("EII", "VVE", "VVV"))
