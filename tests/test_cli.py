"""The command line: ``bayes-gmm fit | select | predict`` on small CSV files.

Each command runs as a subprocess (``python -m bayes_gmm.cli.main``), as a user would run it; the
CSV reader and the parser are also checked in-process, which is faster.
"""

import argparse
import shutil
import subprocess
import sys
from io import StringIO

import numpy as np
import pandas as pd
import pytest

from bayes_gmm import load
from bayes_gmm.cli.main import build_parser, main, parse_k_range
from bayes_gmm.io import DataFileError, read_data


def run_cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "bayes_gmm.cli.main", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def _blobs(n=90, seed=0):
    rng = np.random.default_rng(seed)
    centers = np.array([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]])
    return centers[rng.integers(0, 3, n)] + rng.normal(size=(n, 2))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    X = _blobs()
    frame = pd.DataFrame(X, columns=["length", "width"])
    frame.insert(0, "name", [f"s{i}" for i in range(len(frame))])
    frame.to_csv(folder / "with_names.csv", index=False)
    np.savetxt(folder / "no_header.csv", X, delimiter=",")
    pd.DataFrame(_blobs(20, seed=1), columns=["width", "length"]).to_csv(folder / "new.csv", index=False)
    (folder / "text.csv").write_text("a,b\n1,2\n3,hello\n5,6\n")
    (folder / "missing.csv").write_text("a,b,c\n1,2,3\n4,,6\n7,8,NA\n9,10,11\n")
    (folder / "empty.csv").write_text("")
    (folder / "header_only.csv").write_text("a,b\n")
    (folder / "ragged.csv").write_text("1,2\n3,4\n5,6,7\n")
    (folder / "not_a_model.json").write_text('{"format": "something else"')
    return folder


@pytest.fixture(scope="module")
def fitted_dir(data_dir):
    out = data_dir / "fit_out"
    result = run_cli("fit", data_dir / "with_names.csv", "--k", 3, "--columns", "length,width", "--out", out)
    assert result.returncode == 0, result.stderr
    return out, result


# ----------------------------------------------------------------------------------------
# the commands write what they promise
# ----------------------------------------------------------------------------------------
def test_fit_writes_its_files(fitted_dir):
    out, result = fitted_dir
    for name in ("model.json", "parameters.csv", "covariances.csv", "labels.csv", "clusters.png", "log_posterior.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
        assert name in result.stdout
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["model.json", "parameters.csv", "covariances.csv", "labels.csv", "clusters.png", "log_posterior.png"]
    )
    assert result.stderr == ""
    labels = pd.read_csv(out / "labels.csv")
    assert list(labels.columns) == ["row", "label", "prob_0", "prob_1", "prob_2"]
    assert len(labels) == 90
    np.testing.assert_allclose(labels[["prob_0", "prob_1", "prob_2"]].sum(axis=1), 1.0)
    params = pd.read_csv(out / "parameters.csv")
    assert list(params.columns) == ["component", "weight", "mean_length", "mean_width"]
    np.testing.assert_allclose(params["weight"].sum(), 1.0)
    cov = pd.read_csv(out / "covariances.csv")
    assert len(cov) == 3 * 2 * 2
    est = load(out / "model.json")
    assert est.k == 3 and list(est.feature_names_in_) == ["length", "width"]
    X = pd.read_csv(out.parent / "with_names.csv")[["length", "width"]]
    np.testing.assert_array_equal(est.predict(X), labels["label"])


@pytest.fixture(scope="module")
def selected_dir(data_dir):
    out = data_dir / "select_out"
    result = run_cli(
        "select", data_dir / "no_header.csv", "--k", "1-4", "--covariance-types", "full,spherical", "--out", out
    )
    assert result.returncode == 0, result.stderr
    return out, result


def test_select_writes_its_files(selected_dir):
    out, result = selected_dir
    for name in ("selection.csv", "bic.png", "icl.png", "best_model.json"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert sorted(p.name for p in out.iterdir()) == sorted(["selection.csv", "bic.png", "icl.png", "best_model.json"])
    table = pd.read_csv(out / "selection.csv")
    assert len(table) == 4 * 2
    assert {"k", "covariance_type", "bic", "icl", "log_likelihood", "log_posterior", "n_parameters"} <= set(table.columns)
    assert "best by BIC: k=3" in result.stdout
    assert load(out / "best_model.json").k == 3


def test_predict_writes_labels_and_probabilities(data_dir, fitted_dir):
    out, _ = fitted_dir
    # new.csv has the model's columns in another order: they are picked by name
    to_file = run_cli("predict", out / "model.json", data_dir / "new.csv", "--out", data_dir / "pred.csv")
    assert to_file.returncode == 0, to_file.stderr
    table = pd.read_csv(data_dir / "pred.csv")
    assert len(table) == 20 and list(table.columns[:2]) == ["row", "label"]
    est = load(out / "model.json")
    new = pd.read_csv(data_dir / "new.csv")[["length", "width"]]
    np.testing.assert_array_equal(table["label"], est.predict(new))
    np.testing.assert_array_equal(table[["prob_0", "prob_1", "prob_2"]].to_numpy(), est.predict_proba(new))


def test_predict_to_stdout(data_dir, fitted_dir, capsys):
    out, _ = fitted_dir
    assert main(["predict", str(out / "model.json"), str(data_dir / "new.csv")]) == 0
    table = pd.read_csv(StringIO(capsys.readouterr().out))
    assert len(table) == 20
    est = load(out / "model.json")
    new = pd.read_csv(data_dir / "new.csv")[["length", "width"]]
    np.testing.assert_array_equal(table["label"], est.predict(new))


# ----------------------------------------------------------------------------------------
# earlier results are never overwritten silently
# ----------------------------------------------------------------------------------------
def _snapshot(folder):
    """Every file under ``folder`` with its bytes and modification time."""
    return {
        p.relative_to(folder): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()
    }


def _refusal(err, out):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert f"--out {out} already holds" in lines[0] and "--overwrite" in lines[0]
    return lines[0]


def test_fit_refuses_to_overwrite_an_earlier_fit(data_dir, fitted_dir):
    out, _ = fitted_dir
    before = _snapshot(out)
    result = run_cli("fit", data_dir / "no_header.csv", "--k", 2, "--out", out)
    assert result.returncode == 2
    assert result.stdout == ""
    line = _refusal(result.stderr, out)
    assert line.startswith("bayes-gmm fit: error:") and "model.json" in line
    assert _snapshot(out) == before  # the earlier model, labels and figures are untouched


@pytest.mark.parametrize(
    "command",
    [
        ("fit", "no_header.csv", "--k", "2"),
        ("select", "no_header.csv", "--k", "1-2"),
        ("posterior", "no_header.csv", "--k", "2", "--draws", "5", "--tune", "5"),
    ],
    ids=lambda c: c[0],
)
def test_each_file_a_command_writes_is_protected(data_dir, fitted_dir, selected_dir, tmp_path, command, capsys,
                                                 monkeypatch):
    """A folder holding any one of the files the command writes is refused, before any fitting."""
    monkeypatch.chdir(data_dir)
    names = {
        "fit": [p.name for p in fitted_dir[0].iterdir()],
        "select": [p.name for p in selected_dir[0].iterdir()],
        # checked against a real run by test_posterior_writes_its_files (slow)
        "posterior": ["model.json", "posterior.zarr", "posterior_draws.csv", "comparison.csv", "summary.txt",
                      "posterior_ellipses.png", "posterior_weights.png", "chains.png"],
    }[command[0]]
    for name in names:
        out = tmp_path / f"{command[0]}-{name}"
        out.mkdir()
        (out / name).write_text("an earlier result\n")
        assert main([*command, "--out", str(out)]) == 2, name
        captured = capsys.readouterr()
        assert captured.out == ""
        assert name in _refusal(captured.err, out)
        assert [p.name for p in out.iterdir()] == [name]  # nothing written beside it
        assert (out / name).read_text() == "an earlier result\n"


def test_overwrite_replaces_earlier_results_and_leaves_other_files(data_dir, fitted_dir, tmp_path, capsys):
    out = tmp_path / "again"
    shutil.copytree(fitted_dir[0], out)
    (out / "labels.csv").write_text("an earlier result\n")
    (out / "notes.txt").write_text("mine\n")
    code = main(["fit", str(data_dir / "no_header.csv"), "--k", "2", "--out", str(out), "--overwrite"])
    assert code == 0, capsys.readouterr().err
    labels = pd.read_csv(out / "labels.csv")
    assert list(labels.columns) == ["row", "label", "prob_0", "prob_1"] and len(labels) == 90
    assert load(out / "model.json").k == 2
    assert (out / "notes.txt").read_text() == "mine\n"


def test_other_files_in_out_do_not_block(data_dir, tmp_path, capsys):
    out = tmp_path / "shared"
    out.mkdir()
    (out / "data.csv").write_text("mine\n")
    assert main(["fit", str(data_dir / "no_header.csv"), "--k", "2", "--out", str(out)]) == 0, capsys.readouterr().err
    assert (out / "data.csv").read_text() == "mine\n" and (out / "model.json").is_file()


def test_help_says_what_overwrite_protects(capsys):
    for command in ("fit", "select", "posterior"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "--overwrite" in text and "refuse" in text, command
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    assert "rewrites" in " ".join(capsys.readouterr().out.split())


# ----------------------------------------------------------------------------------------
# the delimiter: detected when not given
# ----------------------------------------------------------------------------------------
def test_fit_reads_a_semicolon_csv_without_delimiter(tmp_path, capsys):
    X = _blobs()
    pd.DataFrame(X, columns=["length", "width"]).to_csv(tmp_path / "semi.csv", sep=";", index=False)
    out = tmp_path / "out"
    assert main(["fit", str(tmp_path / "semi.csv"), "--k", "3", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert "90 rows x 2 columns (length, width)" in captured.out
    params = pd.read_csv(out / "parameters.csv")
    assert list(params.columns) == ["component", "weight", "mean_length", "mean_width"]
    assert len(pd.read_csv(out / "labels.csv")) == 90
    est = load(out / "model.json")
    assert list(est.feature_names_in_) == ["length", "width"]
    np.testing.assert_allclose(np.sort(est.means_[:, 0]), [0, 0, 8], atol=1)


@pytest.mark.parametrize("sep", [";", "\t", "|", ","])
@pytest.mark.parametrize("header", [True, False])
def test_read_data_detects_the_delimiter(tmp_path, sep, header):
    X = _blobs(12, seed=3)
    text = (sep.join(["a", "b", "c"]) + "\n" if header else "") + "".join(
        sep.join(f"{v:.6g}" for v in row) + "\n" for row in np.column_stack([X, X[:, 0] * 2])
    )
    (tmp_path / "d.csv").write_text(text)
    values, names, has_header = read_data(tmp_path / "d.csv")
    assert values.shape == (12, 3)
    assert names == (["a", "b", "c"] if header else ["x1", "x2", "x3"]) and has_header == header
    np.testing.assert_allclose(values[:, :2], X, rtol=1e-5)
    assert read_data(tmp_path / "d.csv", delimiter=sep)[0].shape == (12, 3)  # given, it is used as is


def test_read_data_one_column(tmp_path):
    (tmp_path / "h.csv").write_text("weight\n1.5\n2\n\n-3e2\n")
    (tmp_path / "n.csv").write_text("1.5\n2\n-3e2\n")
    X, names, header = read_data(tmp_path / "h.csv")
    np.testing.assert_array_equal(X, [[1.5], [2.0], [-300.0]])
    assert names == ["weight"] and header
    X, names, header = read_data(tmp_path / "n.csv")
    assert X.shape == (3, 1) and names == ["x1"] and not header


def test_read_data_delimiters_inside_quotes_or_text_do_not_mislead(tmp_path):
    (tmp_path / "q.csv").write_text('name,x,y\n"a;b",1,2\nc,3,4\n"d;e",5,6\n')
    X, names, _ = read_data(tmp_path / "q.csv", columns="x,y")
    np.testing.assert_array_equal(X, [[1, 2], [3, 4], [5, 6]])


def test_ambiguous_delimiter_asks_for_it(tmp_path, capsys):
    # decimal commas and semicolons: both split every line into the same number of fields
    (tmp_path / "eu.csv").write_text("1,5;2,5\n3,5;4,5\n5,5;6,5\n")
    with pytest.raises(DataFileError, match="--delimiter ';'"):
        read_data(tmp_path / "eu.csv")
    assert main(["fit", str(tmp_path / "eu.csv"), "--k", "1", "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and "--delimiter ';'" in err


@pytest.mark.parametrize(("given", "fragment"), [("", "is empty"), (";;", "one character"), ("1", "one character")])
def test_bad_delimiter_is_a_one_line_usage_error(data_dir, given, fragment, capsys):
    with pytest.raises(SystemExit) as info:
        main(["fit", str(data_dir / "no_header.csv"), "--k", "2", "--delimiter", given])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("bayes-gmm fit: error: argument --delimiter:") and fragment in err


@pytest.mark.parametrize("typed", ["\\t", "tab", "\t"])
def test_tab_delimiter_can_be_typed(typed):
    assert build_parser().parse_args(["fit", "data.csv", "--k", "2", "--delimiter", typed]).delimiter == "\t"
    assert build_parser().parse_args(["fit", "data.csv", "--k", "2"]).delimiter is None  # detected


# ----------------------------------------------------------------------------------------
# bad inputs: non-zero exit, one line on stderr, no traceback
# ----------------------------------------------------------------------------------------
BAD_INPUTS = {
    "non-numeric cell": (("fit", "text.csv", "--k", "2"), ["'hello'", "line 3", "column 'b'"]),
    "missing values": (("fit", "missing.csv", "--k", "2"), ["missing value", "line(s) 3, 4", "column(s) b, c"]),
    "empty file": (("fit", "empty.csv", "--k", "2"), ["empty.csv is empty"]),
    "header without rows": (("select", "header_only.csv"), ["no data rows"]),
    "missing file": (("fit", "absent.csv", "--k", "2"), ["no such file: absent.csv"]),
    "ragged rows": (("fit", "ragged.csv", "--k", "2"), ["not a well-formed CSV", "line 3"]),
    "text column": (("fit", "with_names.csv", "--k", "2", "--no-header"), ["non-numeric value 'name'"]),
    "unknown column": (("fit", "with_names.csv", "--k", "2", "--columns", "height"), ["no column 'height'"]),
    "too many components": (("fit", "no_header.csv", "--k", "500"), ["larger than the number of rows"]),
    "bad model file": (("predict", "not_a_model.json", "no_header.csv"), ["not a valid bayes_gmm model file"]),
    "missing model file": (("predict", "absent.json", "no_header.csv"), ["no such model file"]),
    "bad k range": (("select", "no_header.csv", "--k", "5-2"), ["invalid k range"]),
    "posterior without a start": (("posterior", "no_header.csv"), ["give --k", "--model"]),
    "posterior with both starts": (("posterior", "no_header.csv", "--k", "2", "--model", "m.json"), ["not both"]),
}


#: the bad inputs the issue names, each also run as a subprocess
SUBPROCESS_CASES = ("non-numeric cell", "missing values", "empty file", "missing file")


def _args(case):
    args = BAD_INPUTS[case][0]
    return [*args, *(["--out", "out"] if args[0] != "predict" else [])]


def _check_one_line(code, err, case):
    assert code != 0
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "error:" in lines[0]
    for fragment in BAD_INPUTS[case][1]:
        assert fragment in lines[0]


@pytest.fixture(scope="module")
def bad_runs(data_dir):
    """Run the subprocess cases at once to keep the suite fast."""
    procs = {
        case: subprocess.Popen(
            [sys.executable, "-m", "bayes_gmm.cli.main", *_args(case)],
            cwd=data_dir,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for case in SUBPROCESS_CASES
    }
    results = {}
    for case, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        results[case] = (proc.returncode, out, err)
    return results


@pytest.mark.parametrize("case", SUBPROCESS_CASES)
def test_bad_input_subprocess_gives_one_line_error(bad_runs, case):
    code, out, err = bad_runs[case]
    _check_one_line(code, err, case)
    assert out == ""


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_gives_one_line_error(data_dir, case, capsys, monkeypatch):
    monkeypatch.chdir(data_dir)
    try:
        code = main(_args(case))
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    captured = capsys.readouterr()
    _check_one_line(code, captured.err, case)
    assert captured.out == ""


def test_traceback_flag_shows_the_traceback(data_dir):
    with pytest.raises(DataFileError, match="is empty"):
        main(["fit", str(data_dir / "empty.csv"), "--k", "2", "--traceback"])


def test_errors_in_process_return_one(data_dir, capsys):
    assert main(["fit", str(data_dir / "text.csv"), "--k", "2", "--out", str(data_dir / "x")]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("bayes-gmm fit: error:") and captured.err.count("\n") == 1


# ----------------------------------------------------------------------------------------
# the parser and the CSV reader, in-process
# ----------------------------------------------------------------------------------------
def _subparsers(parser):
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def test_every_option_of_every_command_is_explained():
    commands = _subparsers(build_parser())
    assert {"demo", "fit", "select", "predict", "posterior"} <= set(commands)
    for name, sub in commands.items():
        text = " ".join(sub.format_help().split())
        assert sub.description, name
        for action in sub._actions:
            if action.help == argparse.SUPPRESS:
                continue
            assert action.help, f"{name}: {action.dest} has no help"
            label = action.option_strings[0] if action.option_strings else action.dest
            assert label in text, f"{name}: {label} missing from --help"


def test_help_exits_cleanly(capsys):
    for command in ("fit", "select", "predict"):
        with pytest.raises(SystemExit) as info:
            main([command, "--help"])
        assert info.value.code == 0
        assert "--columns" in capsys.readouterr().out


def test_usage_error_is_one_line(capsys):
    with pytest.raises(SystemExit) as info:
        main(["fit"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "required" in err


def test_read_data_guesses_the_header(tmp_path):
    (tmp_path / "h.csv").write_text("x,y\n1,2\n3,4\n")
    (tmp_path / "n.csv").write_text("1,2\n3,4\n\n5,6\n")
    X, names, header = read_data(tmp_path / "h.csv")
    np.testing.assert_array_equal(X, [[1, 2], [3, 4]])
    assert names == ["x", "y"] and header
    X, names, header = read_data(tmp_path / "n.csv")
    np.testing.assert_array_equal(X, [[1, 2], [3, 4], [5, 6]])
    assert names == ["x1", "x2"] and not header
    with pytest.raises(DataFileError, match="non-numeric value 'x'"):
        read_data(tmp_path / "h.csv", header=False)
    X, _, _ = read_data(tmp_path / "n.csv", header=True)  # forced: the first row is names
    assert X.shape == (2, 2)


def test_read_data_columns_by_name_position_and_range(tmp_path):
    (tmp_path / "d.csv").write_text("id;a;b;c\nr1;1;2;3\nr2;4;5;6\n")
    X, names, _ = read_data(tmp_path / "d.csv", columns="c,a", delimiter=";")
    np.testing.assert_array_equal(X, [[3, 1], [6, 4]])
    assert names == ["c", "a"]
    X, names, _ = read_data(tmp_path / "d.csv", columns="2-4", delimiter=";")
    assert names == ["a", "b", "c"]
    with pytest.raises(DataFileError, match="twice"):
        read_data(tmp_path / "d.csv", columns="a,2", delimiter=";")
    with pytest.raises(DataFileError, match="outside 1-4"):
        read_data(tmp_path / "d.csv", columns="5", delimiter=";")


def test_read_data_reports_every_missing_line_and_column(tmp_path):
    (tmp_path / "m.csv").write_text("a,b,c\n1,2,3\n?,2,3\n\n1,null,3\n1,2,3\n1,2,\n")
    with pytest.raises(DataFileError) as info:
        read_data(tmp_path / "m.csv")
    message = str(info.value)
    assert "3 missing value(s)" in message
    assert "line(s) 3, 5, 7" in message  # file lines, the blank line 4 counted
    assert "column(s) a, b, c" in message


def test_read_data_rejects_infinity(tmp_path):
    (tmp_path / "i.csv").write_text("1,2\n3,inf\n")
    with pytest.raises(DataFileError, match="infinite value at line 2"):
        read_data(tmp_path / "i.csv")


def test_a_bad_data_file_is_a_value_error_reported_on_one_line(data_dir, capsys):
    """read_data lives in the io layer; the command line reports its errors as it did."""
    assert issubclass(DataFileError, ValueError)
    with pytest.raises(DataFileError, match="no such file"):
        read_data(data_dir / "absent.csv")
    assert main(["fit", str(data_dir / "absent.csv"), "--k", "2", "--out", str(data_dir / "x")]) == 1
    err = capsys.readouterr().err
    assert err == f"bayes-gmm fit: error: no such file: {data_dir / 'absent.csv'}\n"


def test_covariance_types_are_the_registry_s():
    from bayes_gmm.model.families import COVARIANCE_FAMILIES, covariance_type_names

    commands = _subparsers(build_parser())
    action = next(a for a in commands["fit"]._actions if a.dest == "covariance_type")
    assert tuple(action.choices) == covariance_type_names()
    assert {"full", "VVV", "EII", "VEV", "EVV"} <= set(action.choices) and action.default == "full"
    # the posterior only for the models with a PyMC form (mclust's names of them too)
    action = next(a for a in commands["posterior"]._actions if a.dest == "covariance_type")
    assert set(action.choices) == {"full", "tied", "diag", "spherical", "VVV", "EEE", "VVI", "VII"}
    assert action.default == "full"
    action = next(a for a in commands["select"]._actions if a.dest == "covariance_types")
    assert action.default == list(COVARIANCE_FAMILIES)
    assert action.type("all") == list(COVARIANCE_FAMILIES)
    assert action.type("diag, full,diag") == ["diag", "full"]
    assert action.type("VEV,full,VVV") == ["VEV", "full", "VVV"]
    with pytest.raises(argparse.ArgumentTypeError, match="choose from full, tied, diag, spherical, EII"):
        action.type("full,XYZ")


@pytest.mark.parametrize(
    ("text", "expected"), [("1-9", list(range(1, 10))), ("2,3,5", [2, 3, 5]), ("1-3, 7", [1, 2, 3, 7]), ("4", [4])]
)
def test_parse_k_range(text, expected):
    assert parse_k_range(text) == expected


@pytest.mark.parametrize("text", ["0-3", "3-1", "a", "1-", ""])
def test_parse_k_range_rejects(text):
    with pytest.raises(argparse.ArgumentTypeError):
        parse_k_range(text)


@pytest.mark.slow
def test_posterior_writes_its_files(data_dir, fitted_dir):
    """Compiles and samples a small PyMC model (about a minute)."""
    model, _ = fitted_dir
    out = data_dir / "posterior_out"
    result = run_cli(
        "posterior", data_dir / "with_names.csv", "--model", model / "model.json",
        "--draws", 60, "--tune", 60, "--chains", 2, "--out", out,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    # 2 x 60 draws are too few to converge: the only warnings allowed are the ones that say so
    warned = [line for line in result.stderr.splitlines() if "warning" in line.lower()]
    assert all("converge" in line or "samples" in line or "R-hat" in line for line in warned), warned
    for name in ("model.json", "posterior_draws.csv", "comparison.csv", "summary.txt",
                 "posterior_ellipses.png", "posterior_weights.png", "chains.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert (out / "posterior.zarr").is_dir()
    # the files test_each_file_a_command_writes_is_protected protects, no more, no fewer
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["model.json", "posterior.zarr", "posterior_draws.csv", "comparison.csv", "summary.txt",
         "posterior_ellipses.png", "posterior_weights.png", "chains.png"]
    )
    before = _snapshot(out)
    again = run_cli("posterior", data_dir / "with_names.csv", "--model", model / "model.json", "--out", out)
    assert again.returncode == 2 and again.stdout == ""
    assert "model.json" in _refusal(again.stderr, out)
    assert _snapshot(out) == before
    draws = pd.read_csv(out / "posterior_draws.csv")
    assert len(draws) == 2 * 60
    assert {"chain", "draw", "weights[0]", "means[2, length]"} <= set(draws.columns)
    comparison = pd.read_csv(out / "comparison.csv")
    assert {"map", "mean", "hdi_lower", "hdi_upper", "r_hat"} <= set(comparison.columns)
    assert "R-hat" in (out / "summary.txt").read_text()
    import xarray as xr

    tree = xr.open_datatree(out / "posterior.zarr", engine="zarr")
    assert {"posterior", "map_estimate"} <= set(tree.children)
