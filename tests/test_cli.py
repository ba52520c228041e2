"""The gradcode CLI: output for good input, one clear line for bad input."""

import pytest

from gradcode.cli import main


def run(capsys, *argv):
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    cap = capsys.readouterr()
    return exc.value.code, cap.out, cap.err


def test_codes_list_names_every_scheme(capsys):
    from gradcode.codes import REGISTRY

    code, out, _ = run(capsys, "codes", "list")
    assert code == 0
    for name in REGISTRY:
        assert name in out


def test_codes_show_crc(capsys):
    code, out, _ = run(capsys, "codes", "show", "crc", "-n", "6", "-s", "2")
    assert code == 0
    assert "load: 3" in out
    assert "all 15 straggler sets" in out and "all decode exactly" in out
    assert "cond(B_K)" in out


def test_codes_show_approximate_reports_residual(capsys):
    code, out, _ = run(capsys, "codes", "show", "is_sgd", "-n", "6", "-s", "2")
    assert code == 0 and "worst residual" in out


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["codes", "show", "frc", "-n", "7", "-s", "2"], "does not divide"),
        (["codes", "show", "nope", "-n", "7", "-s", "1"], "unknown scheme"),
        (["codes", "show", "crc", "-n", "x", "-s", "1"], "-n"),
        (["codes", "show", "crc", "-n", "5"], "stragglers"),
        (["codes", "show", "crc", "-n", "5", "-s", "9"], "0 <= s < n"),
        (["codes", "frobnicate"], "frobnicate"),
    ],
)
def test_bad_arguments_give_one_line(capsys, argv, needle):
    code, out, err = run(capsys, *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("gradcode: error:") and needle in lines[0]
    assert "Traceback" not in err + out


def test_codes_compare(capsys):
    code, out, _ = run(capsys, "codes", "compare", "-n", "6", "-s", "1", "--trials", "20")
    assert code == 0 and "cyclic_mds" in out


def test_demo_small(capsys, tmp_path):
    code, out, _ = run(capsys, "demo", "--rounds", "3", "--out", str(tmp_path), "--quiet")
    assert code == 0 and (tmp_path / "demo.png").exists() and "pgc" in out


def test_train_writes_json_lines_and_summary(capsys, tmp_path):
    import json

    code, out, _ = run(
        capsys,
        "train",
        "--scheme",
        "frc",
        "-n",
        "6",
        "-s",
        "1",
        "--rounds",
        "4",
        "--eval-every",
        "2",
        "--out",
        str(tmp_path),
        "--quiet",
    )
    assert code == 0
    lines = [json.loads(x) for x in (tmp_path / "rounds.jsonl").read_text().splitlines()]
    assert [x["round"] for x in lines] == [0, 1, 2, 3]
    assert {"time", "arrived", "decoder", "residual", "staleness_max"} <= set(lines[0])
    assert "test_accuracy" in json.loads((tmp_path / "summary.json").read_text())


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["train", "--scheme", "frc", "-n", "7", "-s", "2"], "does not divide"),
        (["train", "--delay", "gamma"], "unknown delay model"),
        (["train", "--delay", "shifted-exp:mu=0"], "rate mu"),
        (["train", "--crash", "count=x=1"], "crash"),
        (["train", "--dataset", "imagenet"], "imagenet"),
        (["train", "--backend", "slurm"], "backend"),
        (["train", "--resume", "--out", "/nonexistent/x"], "checkpoint"),
    ],
)
def test_train_bad_arguments_one_line(capsys, argv, needle):
    code, out, err = run(capsys, *argv, "--quiet")
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and needle in err


def test_no_arguments_prints_help(capsys):
    code, out, _ = run(capsys)
    assert code == 0 and "codes" in out


def test_reproduce_tandon2017_small(capsys, tmp_path):
    code, out, _ = run(
        capsys,
        "reproduce",
        "tandon2017",
        "--out",
        str(tmp_path),
        "--workers",
        "6",
        "--rounds",
        "50",
    )
    assert code == 0 and (tmp_path / "tandon2017.png").exists()


def test_reproduce_bad_workers(capsys):
    code, _, err = run(capsys, "reproduce", "tandon2017", "--workers", "1,x")
    assert code == 2 and "comma-separated" in err


TINY_GRID = """
workers = 4
rounds = 4
eval_every = 2
[stragglers.shifted_exp]
base = "shifted-exp:a=1,mu=1"
[grid]
schemes = ["dgd", "pgc"]
seeds = [0]
tasks = ["breast_cancer/logreg"]
s = [1]
partitionings = ["iid"]
"""


def test_experiment_run_resume_and_report(capsys, tmp_path):
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_GRID)
    results = tmp_path / "res"
    code, out, _ = run(capsys, "experiment", "run", str(config), "--out", str(results), "--quiet")
    assert code == 0 and "ran 2 cell(s)" in out
    assert (results / "results.csv").is_file()
    code, out, _ = run(capsys, "experiment", "run", str(config), "--out", str(results), "--quiet")
    assert code == 0 and "ran 0 cell(s), 2 already done" in out
    code, out, _ = run(capsys, "report", str(results))
    assert code == 0 and (results / "report" / "report.html").is_file()


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["experiment", "run", "missing.toml"], "no such experiment config"),
        (["report", "."], "has no results.csv"),
        (["train", "--time-scale", "-1"], "time-scale"),
    ],
)
def test_experiment_bad_arguments_one_line(capsys, argv, needle):
    code, _, err = run(capsys, *argv)
    assert code == 2 and needle in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_experiment_bad_toml_one_line(capsys, tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("workers = \n")
    code, _, err = run(capsys, "experiment", "run", str(config))
    assert code == 2 and "invalid TOML" in err and len(err.strip().splitlines()) == 1


def test_codes_show_sequential_and_partial(capsys):
    code, out, _ = run(capsys, "codes", "show", "sr_sgc", "-n", "8", "-s", "3")
    assert code == 0 and "s'=2" in out and "plain GC for lambda=3 stragglers: 4" in out
    code, out, _ = run(capsys, "codes", "show", "partial", "-n", "6", "-s", "2")
    assert code == 0 and "Qmax 13 (lower bound 13)" in out


@pytest.mark.parametrize("scheme", ["sr_sgc", "partial"])
def test_local_only_schemes_refuse_ray_in_one_line(capsys, tmp_path, scheme):
    code, _, err = run(
        capsys, "train", "--scheme", scheme, "--backend", "ray", "--out", str(tmp_path), "-s", "2"
    )
    assert code == 2 and "local backend only" in err and len(err.strip().splitlines()) == 1
