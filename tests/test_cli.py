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
