"""The seed-problem story, end to end: ``bayes-gmm demo``.

Plain EM fails on the seed problem; MAP-EM fits it; the full posterior of the same model is
sampled with PyMC/nutpie and compared with the MAP estimate; everything lands in ``report.md``
with PNG figures and CSV tables in the output folder.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from bayes_gmm.datasets import seed_problem_holdout

__all__ = ["run_demo"]


def _markdown_table(df, float_format: str = "{:.4g}", index: bool = True) -> str:
    """A pandas DataFrame as a GitHub-flavoured markdown table (no extra dependency)."""
    def cell(v):
        if isinstance(v, bool | np.bool_):
            return "yes" if v else "**no**"
        if isinstance(v, float | np.floating):
            return float_format.format(v)
        return str(v)

    header = ([str(df.index.name or "")] if index else []) + [str(c) for c in df.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, row in zip(df.index, df.itertuples(index=False), strict=True):  # keeps each column's type
        values = ([str(label)] if index else []) + [cell(v) for v in row]
        lines.append("| " + " | ".join(values) + " |")
    return "\n".join(lines)


def run_demo(
    out: str | Path = "demo_output",
    seed: int = 0,
    echo=None,
    *,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    progressbar: bool | None = None,
) -> Path:
    """Run the demo and write its files into ``out``; ``echo`` (e.g. ``print``) receives the narration.

    ``seed`` picks the classic random start of both EM runs and the sampler's seed.  The
    sampler's progress bar is shown when ``echo`` is given (or ``progressbar=True``).  Writes
    ``report.md``, the figures (PNG) and ``comparison.csv`` / ``predictive.csv`` into ``out``
    and returns ``out``.
    """
    silent = echo is None
    echo = echo or (lambda *_: None)
    progressbar = (not silent) if progressbar is None else progressbar
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import adjusted_rand_score

    from bayes_gmm import MapEM, make_seed_problem
    from bayes_gmm.plotting.figures import (
        assignment_uncertainty,
        plot_chains,
        plot_clusters,
        plot_density,
        plot_objective,
        plot_posterior_ellipses,
        plot_posterior_marginals,
        plot_uncertainty,
    )
    from em_baseline import PlainEM, SingularCovarianceError, classic_start

    t_start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figures: dict[str, str] = {}

    def save(fig, name: str, caption: str) -> None:
        path = out / name
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        figures[name] = caption

    report: list[str] = ["# bayes-gmm demo: the seed problem", ""]

    # ------------------------------------------------------------------ 1. plain EM fails
    X, y = make_seed_problem()
    k = 10
    start = classic_start(X, k, random_state=seed)
    echo(f"Seed problem: {X.shape[0]} points in {X.shape[1]}-D, k={k} components.")
    echo("1. Plain maximum-likelihood EM from the classic start "
         "(random means in the data's range, identity covariances):")
    baseline = PlainEM(k, **start)
    try:
        baseline.fit(X)
        echo("   it converged this time (try another --seed).")
        baseline_text = (f"Plain maximum-likelihood EM from the classic start (seed {seed}) converged this "
                         "time; with other seeds it collapses a component.")
    except SingularCovarianceError as exc:
        echo(f"   FAILED at EM iteration {exc.iteration}: component {exc.component} collapsed onto "
             "a few points and its covariance became singular.")
        baseline_text = (f"Plain maximum-likelihood EM from the classic start (random means in the data's "
                         f"range, identity covariances, seed {seed}) **fails at EM iteration {exc.iteration}**: "
                         f"component {exc.component} collapses onto a few points and its covariance becomes "
                         f"singular.\n\n> {exc}")
    report += ["## 1. Plain EM", "", baseline_text, ""]

    # ------------------------------------------------------------------ 2. MAP-EM
    echo("2. MAP-EM (bayes_gmm.MapEM) from the identical start:")
    est = MapEM(k, **start).fit(X)
    ari = adjusted_rand_score(y, est.predict(X))
    min_eig = float(np.linalg.eigvalsh(est.covariances_).min())
    echo(f"   converged={est.converged_} after {est.n_iter_} iterations; log-posterior "
         f"{est.log_posterior_:.1f}; adjusted Rand index vs. the true blobs {ari:.3f}.")
    echo(f"   smallest covariance eigenvalue: {min_eig:.3g} (never singular).")
    fig, ax = plt.subplots(figsize=(7, 6))
    plot_clusters(est, X, ax=ax, title="MAP-EM on the seed problem: 1- and 2-sd ellipses")
    save(fig, "mapem_ellipses.png", "MAP-EM from the classic start that breaks plain EM: 1- and 2-sd ellipses.")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    plot_objective(est, baseline, ax=ax)
    save(fig, "objective.png", "MAP-EM's log-posterior per iteration; plain EM's log-likelihood until it fails.")
    best = MapEM(k, n_init=5, random_state=seed).fit(X)
    ari_best = adjusted_rand_score(y, best.predict(X))
    echo(f"   with 5 k-means restarts (n_init=5): log-posterior {best.log_posterior_:.1f}, adjusted Rand "
         f"index {ari_best:.3f}; the posterior is sampled around this fit.")
    report += [
        "## 2. MAP-EM",
        "",
        f"Same start, same data, with the conjugate prior of `docs/MATH.md`: converged = {est.converged_} after "
        f"{est.n_iter_} iterations, log-posterior {est.log_posterior_:.1f}, adjusted Rand index against the "
        f"true blobs {ari:.3f}. Smallest covariance eigenvalue {min_eig:.3g}: the prior keeps every "
        "covariance above `Psi0 / (nu0 + N + d + 2)`.",
        "",
        f"The classic start still leads to a local mode. With 5 k-means restarts (`MapEM(10, n_init=5)`) "
        f"the log-posterior is {best.log_posterior_:.1f} and the adjusted Rand index {ari_best:.3f}; the "
        "rest of the report uses this fit.",
        "",
    ]
    est = best
    fig, axes = plt.subplots(1, 3, figsize=(20, 5.5))
    plot_clusters(est, X, ax=axes[0], title="MAP-EM, best of 5 k-means starts")
    plot_uncertainty(est, X, ax=axes[1])
    plot_density(est, X, ax=axes[2], title="MAP-EM mixture log-density")
    fig.tight_layout()
    save(fig, "mapem_best.png", "MAP-EM with restarts: clusters, assignment uncertainty (size and opacity grow "
         "with 1 - max responsibility) and density contours.")

    # ------------------------------------------------------------------ 3. posterior
    from bayes_gmm.bayes.draws import posterior_membership
    from bayes_gmm.bayes.posterior import sample_posterior
    from bayes_gmm.diagnostics.comparison import compare, loo_summary, predictive_comparison

    echo(f"3. Full posterior of the same model (PyMC + nutpie): {chains} chains x ({tune} tune + {draws} draws), "
         "starting at the MAP-EM solution (compilation first, then sampling):")
    t0 = time.perf_counter()
    idata = sample_posterior(est, X, draws=draws, tune=tune, chains=chains, random_seed=seed,
                             progressbar=progressbar)
    t_sample = time.perf_counter() - t0
    comparison = compare(est, idata)
    verdict = comparison.verdict
    echo(f"   done in {t_sample:.0f} s (compilation included).")
    for line in str(verdict).splitlines():
        echo(f"   {line}")
    table = comparison.table
    table.to_csv(out / "comparison.csv")

    fig, ax = plt.subplots(figsize=(8, 7))
    plot_posterior_ellipses(est, idata, X, ax=ax, n_draws=40, random_seed=seed)
    save(fig, "posterior_ellipses.png", "2-sd ellipses of 40 posterior draws (colour) around MAP-EM's (black).")
    pc = plot_posterior_marginals(est, idata, var_names=["weights"], kind="forest")
    pc.savefig(out / "forest_weights.png", dpi=100, bbox_inches="tight")
    figures["forest_weights.png"] = "Posterior of the weights (mean, 50% and 94% HDI) with the MAP (red diamonds)."
    pc = plot_chains(idata, var_names=["weights"], kind="rank")
    pc.savefig(out / "rank_weights.png", dpi=90, bbox_inches="tight")
    figures["rank_weights.png"] = ("Rank plots of the relabelled weights: each chain's rank ECDF minus the uniform "
                                    "(near zero = chains agree).")
    plt.close("all")

    member_mean, member_sd = posterior_membership(idata, X)
    unc_map = assignment_uncertainty(est.predict_proba(X))
    unc_post = assignment_uncertainty(member_mean)
    fig, ax = plt.subplots(figsize=(7, 6))
    plot_uncertainty(est, X, ax=ax, responsibilities=member_mean,
                     title="posterior mean assignment uncertainty")
    save(fig, "posterior_membership.png",
         "Assignment uncertainty from the posterior mean membership (size and opacity grow with it).")

    # ------------------------------------------------------------------ 4. prediction
    X_new = seed_problem_holdout(500, random_state=seed + 1)
    pred = predictive_comparison(est, idata, X_new)
    pred.summary.to_csv(out / "predictive.csv")
    loo = loo_summary(idata)
    diff = pred.summary.loc["difference"]
    echo(f"4. Held-out log predictive density (500 new points): MAP plug-in "
         f"{pred.summary.loc['map', 'elpd']:.1f}, posterior {pred.summary.loc['posterior', 'elpd']:.1f} "
         f"(difference {diff['elpd']:.2f} +/- {diff['se']:.2f}); PSIS-LOO elpd {loo.elpd:.1f} +/- {loo.se:.1f}, "
         f"{int(loo.pareto_k.loc['good', 'count'])} of {X.shape[0]} Pareto k good.")

    relabel = idata["relabelling"].attrs
    outside = table.loc[~table["map_in_hdi"]]
    worst = table.reindex(table["map_quantile"].sub(0.5).abs().sort_values(ascending=False).index).head(8)
    columns = ["map", "mean", "sd", "hdi_lower", "hdi_upper", "map_in_hdi", "map_quantile", "r_hat",
               "ess_bulk", "ess_tail", "mcse_mean"]
    report += [
        "## 3. The full posterior of the same model",
        "",
        f"`bayes_gmm.sample_posterior`: {chains} chains x ({tune} tune + {draws} draws) with nutpie, every "
        f"chain started at the MAP-EM solution, in {t_sample:.0f} s (compilation included). Draws are "
        f"relabelled to MAP-EM's components: {relabel.get('n_permuted_draws')} of {verdict.n_draws} permuted, "
        f"{relabel.get('n_ambiguous_draws')} ambiguous.",
        "",
        "**Verdict** (`bayes_gmm.compare`, statistics from `arviz_stats` on the relabelled draws, 94% HDI):",
        "",
        *[f"- {line}" for line in str(verdict).splitlines()],
        "",
        f"The full table ({len(table)} rows: every weight, mean coordinate and covariance entry) is in "
        "`comparison.csv`. The weights:",
        "",
        _markdown_table(table.loc[table["variable"] == "weights", columns]),
        "",
        "The entries whose MAP sits furthest in a tail of its posterior (a mode is not a mean: "
        "covariances have skewed posteriors):",
        "",
        _markdown_table(worst[columns]),
        "",
        f"MAP values outside their 94% HDI: {len(outside)}.",
        "",
        "### Membership",
        "",
        f"Points with assignment uncertainty above 0.1: {int(np.sum(unc_map > 0.1))} with the MAP plug-in, "
        f"{int(np.sum(unc_post > 0.1))} with the posterior mean membership; largest posterior sd of a "
        f"responsibility {member_sd.max():.3f}.",
        "",
        "## 4. Prediction",
        "",
        "Held-out log predictive density on 500 new points from the same blobs (MAP plug-in against the "
        "log of the mean density over all draws; se = sqrt(n) x sd of the pointwise values):",
        "",
        _markdown_table(pred.summary, "{:.2f}"),
        "",
        f"PSIS-LOO of the posterior (`arviz_stats.loo`): elpd {loo.elpd:.1f} (se {loo.se:.1f}), "
        f"p_loo {float(loo.loo.p):.1f}; Pareto k (good <= {loo.good_k:.2f}):",
        "",
        _markdown_table(loo.pareto_k, "{:.1f}"),
        "",
        "## Figures",
        "",
    ]
    for name, caption in figures.items():
        report += [f"### {caption}", "", f"![{caption}]({name})", ""]
    elapsed = time.perf_counter() - t_start
    report += [f"_Generated by `bayes-gmm demo --seed {seed}` in {elapsed:.0f} s._", ""]
    (out / "report.md").write_text("\n".join(report))
    echo(f"Report written to {(out / 'report.md').resolve()} ({len(figures)} figures) in {elapsed:.0f} s.")
    return out
