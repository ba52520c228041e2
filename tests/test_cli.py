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
