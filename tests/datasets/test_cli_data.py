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
