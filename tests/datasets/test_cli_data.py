"""Data errors through `gradcode train`: one line and exit 2; --no-verify for unpinned files."""

import numpy as np
import pytest

from gradcode.cli import main

from .helpers import amazon_csv, write_idx_set


def _train(capsys, tmp_path, *extra):
    argv = ["train", "-n", "2", "-s", "1", "--rounds", "2", "--quiet", "--out", str(tmp_path / "o")]
    with pytest.raises(SystemExit) as exc:
        main([*argv, *extra])
    cap = capsys.readouterr()
    return exc.value.code, cap.out + cap.err


def _one_line_error(out, needle):
    lines = [ln for ln in out.splitlines() if ln.startswith("gradcode: error:")]
    assert len(lines) == 1 and needle in lines[0], out
    assert "Traceback" not in out


def test_mnist_label_200(capsys, tmp_path):
    labels = np.array([0, 1, 200, 3, 4, 5, 6], np.uint8)
    write_idx_set(tmp_path / "d", np.random.default_rng(0), labels=labels)
    code, out = _train(
        capsys, tmp_path, "--dataset", "mnist", "--data-dir", str(tmp_path / "d"), "--no-verify"
    )
    assert code == 2
    _one_line_error(out, "label 200 is out of range 0..9")


def test_amazon_action_5(capsys, tmp_path):
    (tmp_path / "train.csv").write_text(amazon_csv(6, np.random.default_rng(0), action=5))
    code, out = _train(
        capsys, tmp_path, "--dataset", "amazon", "--data-dir", str(tmp_path), "--no-verify"
    )
    assert code == 2
    _one_line_error(out, "ACTION must be 0 or 1, got '5'")


def test_unpinned_needs_no_verify(capsys, tmp_path):
    (tmp_path / "train.csv").write_text(amazon_csv(12, np.random.default_rng(0)))
    args = ("--dataset", "amazon", "--data-dir", str(tmp_path), "--model", "logreg")
    code, out = _train(capsys, tmp_path, *args)
    assert code == 2
    _one_line_error(out, "no pinned checksum")
    assert "--no-verify" in out
    code, out = _train(capsys, tmp_path, *args, "--no-verify")
    assert code == 0, out


def test_toml_grid_verify_false_uses_unpinned_files(capsys, tmp_path):
    import textwrap

    (tmp_path / "train.csv").write_text(amazon_csv(24, np.random.default_rng(0)))
    grid = textwrap.dedent(f"""
        workers = 2
        rounds = 2
        eval_every = 2
        data_dir = "{tmp_path}"
        VERIFY
        [stragglers.se]
        base = "shifted-exp:a=1,mu=1"
        [grid]
        schemes = ["dgd"]
        seeds = [0]
        tasks = ["amazon/logreg"]
        s = [1]
        partitionings = ["iid"]
    """)
    for verify, code in (("", 2), ("verify = false", 0)):
        (tmp_path / "g.toml").write_text(grid.replace("VERIFY", verify))
        with pytest.raises(SystemExit) as exc:
            main(["experiment", "run", str(tmp_path / "g.toml"), "--out", str(tmp_path / "r")])
        cap = capsys.readouterr()
        assert exc.value.code == code, cap.err
        if code:  # the unpinned train.csv is refused before any cell runs
            assert "no pinned checksum" in cap.err and not (tmp_path / "r").exists()
    assert "0 failed" in cap.out
    with pytest.raises(SystemExit) as exc:
        (tmp_path / "g.toml").write_text(grid.replace("VERIFY", 'verify = "no"'))
        main(["experiment", "run", str(tmp_path / "g.toml"), "--out", str(tmp_path / "r")])
    assert exc.value.code == 2 and "verify must be bool" in capsys.readouterr().err
