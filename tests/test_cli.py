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


def test_train_tensorboard_writes_events_or_one_line_without_the_package(
    capsys, tmp_path, monkeypatch
):
    """--tensorboard DIR (tests/runtime/test_tensorboard.py reads the events in full)."""
    import sys

    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    argv = ["train", "-n", "4", "-s", "1", "--rounds", "3", "--eval-every", "1", "--quiet"]
    code, _, err = run(capsys, *argv, "--out", str(tmp_path / "a"), "--tensorboard",
                       str(tmp_path / "tb"))  # fmt: skip
    assert code == 0, err
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("eval/test_accuracy")] == [0, 1, 2]
    code, _, err = run(capsys, *argv, "--out", str(tmp_path / "b"), "--tensorboard", "/dev/null")
    assert code == 2 and "/dev/null exists and is not a folder" in err
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # not installed
    code, _, err = run(capsys, *argv, "--out", str(tmp_path / "c"), "--tensorboard",
                       str(tmp_path / "tb2"))  # fmt: skip
    assert code == 2 and err == (
        "gradcode: error: --tensorboard needs the tensorboard package: "
        "pip install 'gradcode[tensorboard]'\n"
    )
    assert not (tmp_path / "c").exists() and not (tmp_path / "tb2").exists()


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


def test_sr_sgc_on_ray_refuses_a_deadline_in_one_line(capsys, tmp_path):
    """Every scheme runs on Ray now; sr_sgc has no deadline mode on either backend."""
    args = ["train", "--scheme", "sr_sgc", "--backend", "ray", "--deadline", "5"]
    code, _, err = run(capsys, *args, "--out", str(tmp_path), "-s", "2", "--quiet")
    assert code == 2 and "no deadline mode" in err and len(err.strip().splitlines()) == 1


# ------------------------------------------------- trust: one line, exit 2


def _one_line_error(code, out, err, needle):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gradcode: error:"), err
    assert needle in lines[0] and "Traceback" not in out + err, lines[0]


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["train", "--out", "/dev/null"], "/dev/null exists and is not a folder"),
        (["train", "--out", "/proc/x"], "/proc/x"),
        (["demo", "--out", "/dev/null"], "not a folder"),
        (["train", "--deadline", "-1"], "deadline must be a positive finite number"),
        (["train", "--deadline", "nan"], "deadline must be a positive finite number, got nan"),
        (["train", "--lr", "1e308"], "lr must be a finite number in (0, 1e+06]"),
        (["train", "--lr", "-0.1"], "lr must be"),
        (["train", "--momentum", "1.5"], "momentum must be a finite number in [0, 1)"),
        (["train", "--momentum", "nan"], "momentum"),
        (["train", "--seed", "-1"], "seed"),
        (["train", "-n", "100000"], "workers must be in 1..10000"),
        (["train", "--rounds", "1000000000"], "rounds must be"),
        (["train", "--time-scale", "inf"], "time_scale"),
        (["train", "--persistent", "k=2,kappa=abc"], "kappa=abc: needs a number (float)"),
        (
            ["train", "--persistent", "k=2,kapa=3"],
            "unknown key 'kapa'; valid keys: k, kappa, layout",
        ),
        (["train", "--persistent", "k=1.5"], "k=1.5: needs an integer (int)"),
        (["train", "--bursty", "p_slow=x"], "p_slow=x: needs a number"),
        (["train", "--crash", "workers=a+b"], "workers=a+b: needs an integer"),
        (["train", "--delay", "shifted-exp:mu=abc"], "mu=abc: needs a number"),
        (["train", "--delay", "pareto:alpha=nan"], "needs a finite number"),
        (["train", "--delay", "pause:bse=1"], "valid keys: base, pause, prob"),
        (["train", "--scheme-opt", "staleness_cap=x"], "staleness_cap=x: needs an integer"),
        (["train", "--scheme-opt", "placment=cr"], "'placment'; valid keys: cache_cap,"),
        (["codes", "show", "crc", "-n", "18446744073709551616", "-s", "1"], "-n"),
        (["codes", "compare", "-s", "18446744073709551616"], "-s"),
        (["reproduce", "tandon2017", "--rounds", "100000000000"], "--rounds"),
    ],
)
def test_nonsense_is_refused_up_front_in_one_line(capsys, tmp_path, argv, needle):
    if "--out" not in argv and argv[0] == "train":
        argv = [*argv, "--out", str(tmp_path)]
    code, out, err = run(capsys, *argv, *(["--quiet"] if argv[0] == "train" else []))
    _one_line_error(code, out, err, needle)
    if argv[0] == "train" and "--out" in argv and argv[argv.index("--out") + 1] == str(tmp_path):
        assert list(tmp_path.iterdir()) == []  # refused before anything was written


def test_typed_options_parse_every_annotation():
    from gradcode.codes import REGISTRY
    from gradcode.runtime.config import DelaySpec, typed_options
    from gradcode.stragglers import CrashStop

    crash = typed_options([("workers", "0+3"), ("count", "none")], CrashStop, "crash", ("base",))
    assert dict(crash) == {"workers": (0, 3), "count": None}
    model = DelaySpec(crash="workers=1,rejoin_after=4").build()
    assert model.workers == (1,) and model.rejoin_after == 4
    pgc = typed_options([("staleness_cap", "2"), ("placement", "cr")], REGISTRY["pgc"].factory,
                        "pgc", ("n", "s", "rng"))  # fmt: skip
    assert dict(pgc) == {"staleness_cap": 2, "placement": "cr"}
    ref = typed_options([("cache_cap", "5")], REGISTRY["pgc_reference"].factory, "ref", ("n", "s"))
    assert ref == (("cache_cap", 5),)  # **kw followed to PGC's signature
    with pytest.raises(ValueError, match="staleness_cap=x: needs an integer"):
        typed_options([("staleness_cap", "x")], REGISTRY["pgc"].factory, "pgc")


def test_typed_options_of_an_unannotated_plugin_factory():
    from gradcode.runtime.config import typed_options

    def factory(n, s, width, name="x", flag=False):  # a user's plugin, no annotations
        raise AssertionError

    got = typed_options([("width", "3"), ("name", "7.5"), ("flag", "yes")], factory, "p",
                        ("n", "s"))  # fmt: skip
    assert got == (("width", 3), ("name", "7.5"), ("flag", True))  # guessed, default's type
    with pytest.raises(ValueError, match="valid keys: flag, name, width"):
        typed_options([("s", "1")], factory, "p", ("n", "s"))


@pytest.fixture
def tiny_results(tmp_path, capsys):
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_GRID)
    results = tmp_path / "res"
    code, _, err = run(capsys, "experiment", "run", str(config), "--out", str(results), "--quiet")
    assert code == 0, err
    return results


@pytest.mark.parametrize(
    "damage,needle",
    [
        (lambda d: _truncate(d / "results.csv"), "results.csv is truncated"),
        (lambda d: _truncate(d / "rounds.csv"), "rounds.csv is truncated"),
        (lambda d: (d / "rounds.csv").unlink(), "rounds.csv is missing"),
        (lambda d: (d / "results.csv").write_text("cell_id,group\n"), "lacks column(s)"),
        (lambda d: _drop_field(d / "rounds.csv"), "fields, not"),
    ],
)
def test_report_on_damaged_results_is_one_line(capsys, tiny_results, damage, needle):
    damage(tiny_results)
    code, out, err = run(capsys, "report", str(tiny_results))
    _one_line_error(code, out, err, needle)


def _truncate(path):
    text = path.read_text()
    path.write_text(text[: len(text) // 2])


def _drop_field(path):
    lines = path.read_text().splitlines()
    lines[1] = lines[1].rsplit(",", 1)[0]
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    "prefix,needle",
    [
        ("report = 5\n", "report must be a table"),
        ("grids = [1, 2]\n", "[[grids]] #1 must be a table"),
    ],
)
def test_experiment_toml_of_the_wrong_type_is_one_line(capsys, tmp_path, prefix, needle):
    config = tmp_path / "bad.toml"
    config.write_text(prefix + TINY_GRID)
    code, out, err = run(capsys, "experiment", "run", str(config), "--out", str(tmp_path / "o"))
    _one_line_error(code, out, err, needle)
    assert not (tmp_path / "o").exists()
