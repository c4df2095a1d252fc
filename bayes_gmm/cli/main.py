"""Command line: ``bayes-gmm demo | fit | select | predict | posterior``.

Every data command reads a CSV of numbers (with or without a header row; ``--columns`` picks
columns; the delimiter, one of ``, ; TAB |``, is detected unless ``--delimiter`` gives it) and
reports a bad input on one line of stderr with a non-zero exit status, never a traceback
(``--traceback`` shows it, for bug reports).  ``fit``, ``select`` and ``posterior`` refuse an
``--out`` folder that already holds any of the files they write, unless ``--overwrite``.
"""

from __future__ import annotations

import argparse
import re
import sys
import warnings
from pathlib import Path

import numpy as np

from bayes_gmm.io import read_data
from bayes_gmm.io.csv_data import check_delimiter, short_list
from bayes_gmm.model.families import COVARIANCE_FAMILIES, covariance_type_names, get_family

__all__ = ["CLIError", "main", "build_parser", "parse_k_range"]

#: The covariance types, in the registry's order.

#: The files each command writes into --out (an earlier run's are not overwritten silently).
_FIT_FILES = ("model.json", "parameters.csv", "covariances.csv", "labels.csv", "clusters.png", "log_posterior.png")
_SELECT_FILES = ("selection.csv", "bic.png", "icl.png", "best_model.json")
_POSTERIOR_FILES = (
    "model.json", "posterior.zarr", "posterior_draws.csv", "comparison.csv", "summary.txt",
    "posterior_ellipses.png", "posterior_weights.png", "chains.png",
)


class CLIError(Exception):
    """A bad input, reported on one line without a traceback.

    ``status`` is the exit status: 1 for bad input, 2 for a usage the command refuses (an
    ``--out`` folder that already holds results, without ``--overwrite``).
    """

    def __init__(self, message: str, status: int = 1):
        super().__init__(message)
        self.status = status


def parse_k_range(text: str) -> list[int]:
    """``"1-9"``, ``"2,3,5"`` or ``"1-4,8"`` -> sorted distinct integers >= 1.

    Examples
    --------
    >>> parse_k_range("1-4,8")
    [1, 2, 3, 4, 8]
    """
    out: set[int] = set()
    for token in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", token)
        if not match:
            raise argparse.ArgumentTypeError(
                f"invalid k {text!r}: use a range like 1-9, a list like 2,3,5, or both (1-4,8)."
            )
        lo = int(match.group(1))
        hi = int(match.group(2) or lo)
        if lo < 1 or hi < lo:
            raise argparse.ArgumentTypeError(f"invalid k range {token.strip()!r}: need 1 <= low <= high.")
        out.update(range(lo, hi + 1))
    return sorted(out)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not np.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def _posterior_types() -> tuple[str, ...]:
    """The covariance types the posterior layer has a PyMC form of (registered and mclust names)."""
    return tuple(t for t in covariance_type_names() if get_family(t).posterior_form)


def _covariance_types(text: str) -> list[str]:
    if text.strip() == "all":
        return list(COVARIANCE_FAMILIES)
    types = [t.strip() for t in text.split(",") if t.strip()]
    accepted = covariance_type_names()
    bad = [t for t in types if t not in accepted]
    if bad or not types:
        raise argparse.ArgumentTypeError(
            f"unknown covariance type(s) {bad or [text]}: choose from {', '.join(accepted)} or 'all'."
        )
    return list(dict.fromkeys(types))


# ----------------------------------------------------------------------------------------
# writing results
# ----------------------------------------------------------------------------------------
def _out_dir(path: str, writes: tuple[str, ...], overwrite: bool) -> Path:
    """Create the folder ``path``; refuse (exit status 2) when it already holds any of ``writes``."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out} exists and is not a folder.")
    earlier = [name for name in writes if (out / name).exists() or (out / name).is_symlink()]
    if earlier and not overwrite:
        raise CLIError(
            f"--out {out} already holds {short_list(earlier)} from an earlier run; pass --overwrite to "
            "replace them, or choose another --out.",
            status=2,
        )
    out.mkdir(parents=True, exist_ok=True)
    return out


def _memberships(est, X, names):
    import pandas as pd

    Xin = pd.DataFrame(X, columns=list(est.feature_names_in_)) if hasattr(est, "feature_names_in_") else X
    proba = est.predict_proba(Xin)
    table = pd.DataFrame({"row": np.arange(1, X.shape[0] + 1), "label": np.argmax(proba, axis=1)})
    for j in range(proba.shape[1]):
        table[f"prob_{j}"] = proba[:, j]
    return table


def _dense_covariances(est) -> np.ndarray:
    from bayes_gmm.plotting.figures import covariance_matrices

    return np.asarray(covariance_matrices(est))


def _write_parameters(est, names, out: Path) -> list[Path]:
    import pandas as pd

    k, d = est.means_.shape
    params = pd.DataFrame({"component": np.arange(k), "weight": est.weights_})
    for j, name in enumerate(names):
        params[f"mean_{name}"] = est.means_[:, j]
    cov = _dense_covariances(est)
    rows = [
        {"component": c, "row": names[i], "column": names[j], "covariance": cov[c, i, j]}
        for c in range(k)
        for i in range(d)
        for j in range(d)
    ]
    p1, p2 = out / "parameters.csv", out / "covariances.csv"
    params.to_csv(p1, index=False)
    pd.DataFrame(rows).to_csv(p2, index=False)
    return [p1, p2]


def _figure_clusters(est, X, names, path: Path) -> Path:
    import matplotlib.pyplot as plt

    from bayes_gmm.plotting.figures import plot_clusters

    d = X.shape[1]
    pairs = [(i, j) for i in range(min(d, 4)) for j in range(i + 1, min(d, 4))] or [(0, 0)]
    ncols = min(3, len(pairs))
    nrows = -(-len(pairs) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.8 * ncols, 4.2 * nrows), squeeze=False)
    for ax, (i, j) in zip(axes.ravel(), pairs, strict=False):
        with warnings.catch_warnings():  # plot_clusters predicts on the bare array
            warnings.filterwarnings("ignore", message="X does not have valid feature names")
            plot_clusters(est, X, ax=ax, dims=(i, j) if d > 1 else (0, 1))
        ax.set_xlabel(names[i])
        ax.set_ylabel(names[j] if d > 1 else "density")
    for ax in axes.ravel()[len(pairs):]:
        ax.set_visible(False)
    fig.suptitle(f"MAP-EM, k={est.k}, {est.covariance_type} covariances: 1- and 2-sd ellipses")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _figure_history(est, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.plot(np.arange(len(est.log_posteriors_)), est.log_posteriors_, marker=".")
    ax.set_xlabel("EM iteration")
    ax.set_ylabel("log-posterior")
    ax.set_title("MAP-EM climbs the log-posterior")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _frame(X, names, has_header):
    import pandas as pd

    return pd.DataFrame(X, columns=names) if has_header else X


# ----------------------------------------------------------------------------------------
# commands
# ----------------------------------------------------------------------------------------
def _demo(args) -> int:
    from bayes_gmm.cli.demo import run_demo

    run_demo(args.out, seed=args.seed, echo=print)
    return 0


def _fit(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from bayes_gmm.em.base import bic_value
    from bayes_gmm.em.map_em import MapEM
    from bayes_gmm.io.model_file import save
    from bayes_gmm.model.families import get_family

    X, names, has_header = read_data(args.data, args.columns, args.header, args.delimiter)
    out = _out_dir(args.out, _FIT_FILES, args.overwrite)
    est = MapEM(
        args.k,
        covariance_type=args.covariance_type,
        prior_strength=args.prior_strength,
        alpha=args.alpha,
        n_init=args.n_init,
        max_iter=args.max_iter,
        tol=args.tol,
        random_state=args.seed,
    ).fit(_frame(X, names, has_header))
    written = [save(est, out / "model.json")]
    written += _write_parameters(est, names, out)
    labels = _memberships(est, X, names)
    labels.to_csv(out / "labels.csv", index=False)
    written.append(out / "labels.csv")
    written.append(_figure_clusters(est, X, names, out / "clusters.png"))
    written.append(_figure_history(est, out / "log_posterior.png"))
    counts = np.bincount(labels["label"].to_numpy(), minlength=args.k)
    # BIC from score_samples: MapEM.bic re-validates an already converted array and warns
    # about feature names when the model was fitted on a DataFrame
    n_parameters = get_family(est.covariance_type).n_parameters(est.k, X.shape[1])
    bic = bic_value(float(np.sum(est.score_samples(_frame(X, names, has_header)))), n_parameters, X.shape[0])
    print(
        f"MAP-EM, k={args.k}, {args.covariance_type}: {X.shape[0]} rows x {X.shape[1]} columns "
        f"({', '.join(names)}); {'converged' if est.converged_ else 'NOT converged'} after "
        f"{est.n_iter_} iterations; log-posterior {est.log_posterior_:.6g}; BIC {bic:.6g}."
    )
    print(f"rows per component: {', '.join(str(c) for c in counts)}")
    for path in written:
        print(f"wrote {path}")
    return 0


def _select(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bayes_gmm.em.selection import select
    from bayes_gmm.io.model_file import save

    X, names, has_header = read_data(args.data, args.columns, args.header, args.delimiter)
    out = _out_dir(args.out, _SELECT_FILES, args.overwrite)
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    result = select(
        _frame(X, names, has_header),
        k=args.k,
        covariance_types=args.covariance_types,
        criterion=args.criterion,
        n_init=args.n_init,
        random_state=args.seed,
        n_jobs=args.jobs,
        progress=progress,
        prior_strength=args.prior_strength,
        alpha=args.alpha,
    )
    written = [out / "selection.csv"]
    result.table.to_csv(written[0], index=False)
    for criterion in ("bic", "icl"):
        fig, ax = plt.subplots(figsize=(6.5, 4.5))
        result.plot(ax=ax, criterion=criterion)
        fig.tight_layout()
        path = out / f"{criterion}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    written.append(save(result.best_estimator_, out / "best_model.json"))
    table = result.table
    failed = table[table["error"].notna()]
    show = table.sort_values(args.criterion).head(5)[
        ["k", "covariance_type", "log_likelihood", "n_parameters", "bic", "icl", "converged"]
    ]
    best = result.best_params_
    print(f"best by {args.criterion.upper()}: k={best['k']}, covariance_type={best['covariance_type']}")
    print(show.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    if len(failed):
        print(f"{len(failed)} fit(s) failed; their reasons are in the 'error' column of selection.csv")
    for path in written:
        print(f"wrote {path}")
    return 0


def _predict(args) -> int:
    from bayes_gmm.io.model_file import load

    est = load(args.model)
    model_names = list(getattr(est, "feature_names_in_", []))
    d = est.n_features_in_
    columns = args.columns
    if columns is None and model_names:
        # a header with the model's column names picks them, in the model's order
        _, names, has_header = read_data(args.data, None, args.header, args.delimiter)
        if has_header:
            absent = [n for n in model_names if n not in names]
            if absent:
                raise CLIError(
                    f"{args.data} has no column(s) {short_list(absent)} that the model was fitted on; "
                    "choose the columns with --columns."
                )
            columns = ",".join(model_names)
    X, names, _ = read_data(args.data, columns, args.header, args.delimiter)
    if X.shape[1] != d:
        raise CLIError(
            f"the model was fitted on {d} column(s) but {args.data} gives {X.shape[1]}; "
            "choose the columns with --columns."
        )
    table = _memberships(est, X, names)
    if args.out in (None, "-"):
        table.to_csv(sys.stdout, index=False)
    else:
        out = Path(args.out)
        if out.parent and not out.parent.exists():
            out.parent.mkdir(parents=True)
        table.to_csv(out, index=False)
        print(f"wrote {out} ({X.shape[0]} rows)")
    return 0


def _draws_table(idata):
    """The relabelled posterior draws as one wide table: a row per (chain, draw)."""
    import pandas as pd

    posterior = idata["posterior"].to_dataset()
    columns = {}
    for name in ("weights", "means", "covariances"):
        da = posterior[name]
        param_dims = [dim for dim in da.dims if dim not in ("chain", "draw")]
        values = da.transpose("chain", "draw", *param_dims).values
        flat = values.reshape(values.shape[0] * values.shape[1], -1)
        labels = [
            f"{name}[{', '.join(str(da[dim].values[i]) for dim, i in zip(param_dims, idx, strict=True))}]"
            for idx in np.ndindex(*values.shape[2:])
        ]
        for j, label in enumerate(labels):
            columns[label] = flat[:, j]
    n_chains, n_draws = posterior.sizes["chain"], posterior.sizes["draw"]
    table = pd.DataFrame({
        "chain": np.repeat(posterior["chain"].values, n_draws),
        "draw": np.tile(posterior["draw"].values, n_chains),
    })
    return pd.concat([table, pd.DataFrame(columns)], axis=1)


def _save_figure(obj, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig = obj.figure if hasattr(obj, "figure") else obj.viz["figure"].item()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _posterior(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from bayes_gmm.em.map_em import MapEM
    from bayes_gmm.io.model_file import load, save

    if args.model is None and args.k is None:
        raise CLIError("give --k (fit MAP-EM first) or --model (a model saved by 'bayes-gmm fit').")
    if args.model is not None and args.k is not None:
        raise CLIError("give --k or --model, not both.")
    out = _out_dir(args.out, _POSTERIOR_FILES, args.overwrite)  # before the minutes of sampling
    from bayes_gmm.bayes.posterior import sample_posterior
    from bayes_gmm.diagnostics.comparison import compare
    from bayes_gmm.plotting.figures import plot_chains, plot_posterior_ellipses, plot_posterior_marginals

    if args.model is not None:
        est = load(args.model)
        names = list(getattr(est, "feature_names_in_", []))
        columns = args.columns or (",".join(names) if names else None)
        X, names, has_header = read_data(args.data, columns, args.header, args.delimiter)
        if X.shape[1] != est.n_features_in_:
            raise CLIError(
                f"the model was fitted on {est.n_features_in_} column(s) but {args.data} gives "
                f"{X.shape[1]}; choose the columns with --columns."
            )
    else:
        X, names, has_header = read_data(args.data, args.columns, args.header, args.delimiter)
        est = MapEM(
            args.k,
            covariance_type=args.covariance_type,
            prior_strength=args.prior_strength,
            alpha=args.alpha,
            n_init=args.n_init,
            random_state=args.seed,
        ).fit(X)  # the bare array: the posterior layer predicts on arrays
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    # a model saved from a CSV with a header knows its column names; the posterior layer
    # works on the bare array, which scikit-learn would warn about at every prediction
    warnings.filterwarnings("ignore", message="X does not have valid feature names")
    idata = sample_posterior(
        est,
        X,
        draws=args.draws,
        tune=args.tune,
        chains=args.chains,
        sampler=args.sampler,
        random_seed=args.seed,
        progressbar=progress,
    )
    written = [save(est, out / "model.json")]
    store = out / "posterior.zarr"
    with warnings.catch_warnings():
        # consolidated metadata lets xarray.open_datatree read the store without a warning;
        # zarr notes that it is not (yet) in the Zarr 3 specification
        warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part")
        idata.to_zarr(store, mode="w", consolidated=True)
    written.append(store)
    _draws_table(idata).to_csv(out / "posterior_draws.csv", index=False)
    written.append(out / "posterior_draws.csv")
    comparison = compare(est, idata)
    comparison.table.to_csv(out / "comparison.csv")
    written.append(out / "comparison.csv")
    (out / "summary.txt").write_text(str(comparison.verdict) + "\n", encoding="utf-8")
    written.append(out / "summary.txt")
    written.append(_save_figure(plot_posterior_ellipses(est, idata, X), out / "posterior_ellipses.png"))
    written.append(_save_figure(plot_posterior_marginals(est, idata, var_names=("weights",)), out / "posterior_weights.png"))
    written.append(_save_figure(plot_chains(idata, var_names=("weights",)), out / "chains.png"))
    print(
        f"posterior of MAP-EM, k={est.k}, {est.covariance_type}: {args.chains} chains x {args.draws} draws "
        f"on {X.shape[0]} rows x {X.shape[1]} columns ({', '.join(names)})."
    )
    print(str(comparison.verdict))
    for path in written:
        print(f"wrote {path}")
    return 0


# ----------------------------------------------------------------------------------------
# the parser
# ----------------------------------------------------------------------------------------
def _data_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("reading the CSV")
    group.add_argument(
        "--columns",
        metavar="COLS",
        help="columns to use, comma-separated: header names (a,b,c) or positions counted from 1, "
        "ranges allowed (1,3-5); default: every column",
    )
    group.add_argument(
        "--header",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="whether the first row holds column names (default: guessed, a first row with any "
        "cell that is not a number is a header)",
    )
    group.add_argument(
        "--delimiter",
        type=_delimiter,
        default=None,
        help="field separator, one character; type '\\t' or tab for a tab (default: detected from the first "
        "lines among ',', ';', tab and '|'; a file where none occurs has one column)",
    )


def _delimiter(text: str) -> str:
    text = "\t" if text in ("\\t", "tab") else text
    try:
        return check_delimiter(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _overwrite_option(parser: argparse.ArgumentParser, writes: tuple[str, ...]) -> None:
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the results of an earlier run in --out; without it the command refuses a "
        f"folder that already holds any of {', '.join(writes)} (other files are never touched)",
    )


def _model_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("the model")
    group.add_argument(
        "--prior-strength",
        type=_positive_float,
        default=1.0,
        help="factor on the prior's covariance scale: 1 is mclust's default prior, larger gives "
        "wider, smoother components, smaller approaches maximum likelihood (default: 1)",
    )
    group.add_argument(
        "--alpha",
        type=float,
        default=None,
        help="Dirichlet concentration of the weights, >= 1 (default: 2, one pseudo-observation per "
        "component, so no weight reaches zero; 1 is mclust's flat choice)",
    )
    group.add_argument(
        "--n-init", type=_positive_int, default=1,
        help="initialisations per fit; the highest log-posterior is kept (default: 1)",
    )
    group.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same results (default: 0)")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--traceback", action="store_true", help="on an error, show the full Python traceback")


class _Parser(argparse.ArgumentParser):
    """Usage errors on one line (the usage itself is one ``--help`` away)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="bayes-gmm",
        description="Gaussian mixtures that never die of a singular covariance (MAP-EM).",
        epilog="Run 'bayes-gmm COMMAND --help' for the options of each command.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    demo = sub.add_parser(
        "demo",
        help="run the seed-problem story end to end",
        description="Plain EM fails on the seed problem; MAP-EM does not. Writes report.md, figures and "
        "tables to --out, and rewrites them on every run (so 'make demo' can run again): give it a "
        "folder of its own.",
    )
    demo.add_argument("--out", default="demo_output",
                      help="output folder, created if missing; the demo rewrites its own files there (default: demo_output)")
    demo.add_argument("--seed", type=int, default=0, help="seed of the classic random start (default: 0)")
    demo.set_defaults(func=_demo)

    fit = sub.add_parser(
        "fit",
        help="fit a MAP-EM mixture to a CSV file",
        description="Fit a Gaussian mixture by MAP-EM to the rows of a CSV file of numbers and write, "
        "into --out: model.json (the saved model, for 'bayes-gmm predict'), parameters.csv "
        "(weights and means), covariances.csv (one row per component and matrix entry), "
        "labels.csv (most probable component and membership probabilities of every row), "
        "clusters.png and log_posterior.png.",
    )
    fit.add_argument("data", help="CSV file, one row per observation")
    fit.add_argument("--k", type=_positive_int, required=True, help="number of components (required)")
    fit.add_argument(
        "--covariance-type", choices=covariance_type_names(), default="full",
        help="full: one covariance matrix per component; tied: one shared matrix; diag: diagonal "
        "per component; spherical: one variance per component (default: full)",
    )
    fit.add_argument("--out", default="fit_output", help="output folder, created if missing (default: fit_output)")
    _overwrite_option(fit, _FIT_FILES)
    fit.add_argument("--max-iter", type=_positive_int, default=500, help="EM iterations at most (default: 500)")
    fit.add_argument("--tol", type=_positive_float, default=1e-6,
                     help="stop when the relative change of the log-posterior is below this (default: 1e-6)")
    _model_options(fit)
    _data_options(fit)
    _common(fit)
    fit.set_defaults(func=_fit)

    sel = sub.add_parser(
        "select",
        help="choose the number of components and the covariance type (BIC/ICL table)",
        description="Fit MAP-EM for every number of components in --k and every covariance type, "
        "as mclust does, and write into --out: selection.csv (one row per fit: k, covariance "
        "type, log-likelihood, log-posterior, number of parameters, BIC, ICL, AIC, converged, "
        "error), bic.png and icl.png (one line per covariance type; lower is better) and "
        "best_model.json (the best fit, for 'bayes-gmm predict').",
    )
    sel.add_argument("data", help="CSV file, one row per observation")
    sel.add_argument("--k", type=parse_k_range, default=parse_k_range("1-9"),
                     help="numbers of components to try: a range (1-9), a list (2,3,5) or both (default: 1-9)")
    sel.add_argument("--covariance-types", type=_covariance_types, default=list(COVARIANCE_FAMILIES), metavar="TYPES",
                     help=f"comma-separated covariance types among {', '.join(COVARIANCE_FAMILIES)}, or 'all' (default: all)")
    sel.add_argument("--criterion", choices=("bic", "icl", "aic"), default="bic",
                     help="criterion that picks the best model, lower is better (default: bic)")
    sel.add_argument("--out", default="select_output", help="output folder, created if missing (default: select_output)")
    _overwrite_option(sel, _SELECT_FILES)
    sel.add_argument("--jobs", type=int, default=1, help="fits run in parallel (joblib); -1 uses every core (default: 1)")
    sel.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                     help="show a progress bar on stderr (default: when stderr is a terminal)")
    _model_options(sel)
    _data_options(sel)
    _common(sel)
    sel.set_defaults(func=_select)

    pred = sub.add_parser(
        "predict",
        help="label new rows with a saved model",
        description="Load a model saved by 'bayes-gmm fit' or 'select' (model.json) and write, for "
        "every row of the CSV, its 1-based row number, its most probable component (label, from 0) "
        "and its membership probabilities prob_0, prob_1, ... as CSV, to stdout or --out. With a "
        "header, the columns the model was fitted on are picked by name.",
    )
    pred.add_argument("model", help="model file written by 'bayes-gmm fit' (model.json) or 'select' (best_model.json)")
    pred.add_argument("data", help="CSV file with the new rows")
    pred.add_argument("--out", default=None, help="output CSV file (default: stdout)")
    _data_options(pred)
    _common(pred)
    pred.set_defaults(func=_predict)

    _add_posterior(sub)
    return parser


def _add_posterior(sub) -> None:
    post = sub.add_parser(
        "posterior",
        help="sample the full posterior with PyMC and compare it with MAP-EM",
        description="Fit MAP-EM (--k) or load a saved fit (--model), sample the posterior of the "
        "mixture under the same prior with PyMC (NUTS), relabel the draws to MAP-EM's components, "
        "and write into --out: model.json (the MAP-EM fit), posterior.zarr (every group of the "
        "xarray DataTree, readable with xarray.open_datatree(path, engine='zarr')), "
        "posterior_draws.csv (the relabelled draws, one row per chain and draw), comparison.csv "
        "(MAP beside posterior mean, sd, HDI, R-hat and ESS of every parameter), summary.txt "
        "(the convergence verdict), posterior_ellipses.png, posterior_weights.png and chains.png. "
        "Compiling and sampling take from a minute upwards.",
    )
    post.add_argument("data", help="CSV file, one row per observation")
    start = post.add_argument_group("the MAP-EM fit the posterior starts from (give --k or --model)")
    start.add_argument("--k", type=_positive_int, default=None, help="number of components: fit MAP-EM first")
    start.add_argument("--model", default=None,
                       help="a model saved by 'bayes-gmm fit' (model.json) to start from instead of fitting")
    start.add_argument("--covariance-type", choices=_posterior_types(), default="full",
                       help="covariance type of the fit (with --k; default: full)")
    sampling = post.add_argument_group("sampling")
    sampling.add_argument("--draws", type=_positive_int, default=1000, help="draws kept per chain (default: 1000)")
    sampling.add_argument("--tune", type=_positive_int, default=1000, help="warm-up steps per chain (default: 1000)")
    sampling.add_argument("--chains", type=_positive_int, default=4, help="number of chains (default: 4)")
    sampling.add_argument("--sampler", choices=("nutpie", "pymc"), default="nutpie",
                          help="NUTS implementation: nutpie (compiled, faster) or PyMC's own (default: nutpie)")
    sampling.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                          help="show the sampler's progress bar (default: when stderr is a terminal)")
    post.add_argument("--out", default="posterior_output",
                      help="output folder, created if missing (default: posterior_output)")
    _overwrite_option(post, _POSTERIOR_FILES)
    _model_options(post)
    _data_options(post)
    _common(post)
    post.set_defaults(func=_posterior)


# ----------------------------------------------------------------------------------------
def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 success, 1 bad input, 2 bad usage).

    Bad usage includes an ``--out`` folder that already holds results, without ``--overwrite``.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    prog = f"bayes-gmm {args.command}"

    def show_warning(message, category, filename, lineno, file=None, line=None):
        print(f"{prog}: warning: {_one_line(message)}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show_warning
        try:
            return int(args.func(args) or 0)
        except BrokenPipeError:  # e.g. piped into `head`: stop quietly, as Unix tools do
            import os

            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return 1
        except KeyboardInterrupt:
            print(f"{prog}: interrupted", file=sys.stderr)
            return 130
        except Exception as exc:
            if getattr(args, "traceback", False):
                raise
            expected = isinstance(exc, (CLIError, ValueError, TypeError, OSError))
            hint = "" if expected else " (rerun with --traceback for details)"
            kind = "" if isinstance(exc, (CLIError, ValueError, OSError)) else f"{type(exc).__name__}: "
            print(f"{prog}: error: {kind}{_one_line(exc)}{hint}", file=sys.stderr)
            return exc.status if isinstance(exc, CLIError) else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
