"""`gradcode reproduce ramamoorthy2024` options and `gradcode codes show tandon_partial`."""

import pytest

from gradcode.cli import main


def run(capsys, *argv):
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    cap = capsys.readouterr()
    return exc.value.code, cap.out, cap.err


def test_reproduce_with_settings(capsys, tmp_path):
    code, out, _ = run(
        capsys, "reproduce", "ramamoorthy2024", "--out", str(tmp_path), "--trials", "8",
        "--m", "10", "--deltas", "3", "--ls", "1", "--chunk-model", "persistent",
        "--failures", "bernoulli", "--latency", "0.1", "--bandwidth", "2",
    )  # fmt: skip
    assert code == 0
    assert "delta=3,circulant,l=1:" in out and "delta=3,circulant,l=1,reference:" in out
    assert (tmp_path / "traffic.csv").is_file() and (tmp_path / "e_mse_ordering.png").is_file()


@pytest.mark.parametrize(
    ("args", "msg"),
    [(("--m", "9", "--deltas", "4"), "even m"), (("--failures", "x"), "failures must")],
)
def test_reproduce_bad_settings_one_line(capsys, tmp_path, args, msg):
    code, _, err = run(capsys, "reproduce", "ramamoorthy2024", "--out", str(tmp_path), *args)
    assert code == 2 and msg in err and "Traceback" not in err


def test_codes_show_tandon_partial(capsys):
    code, out, _ = run(capsys, "codes", "show", "tandon_partial", "-n", "6", "-s", "1")
    assert code == 0
    assert "worker   0: [0, 1] | [12, 13]" in out and "2x slower" in out
