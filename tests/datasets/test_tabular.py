"""Kaggle Amazon CSV: hashing trick, label validation, unpinned by default."""

import numpy as np
import pytest

from gradcode.datasets import AMAZON_FEATURES, load_dataset

from .helpers import amazon_csv


def _load(root, **kw):
    return load_dataset("amazon", np.random.default_rng(0), root, **kw)


def test_amazon_csv_hashed_features(tmp_path):
    (tmp_path / "train.csv").write_text(amazon_csv(40, np.random.default_rng(0)))
    ds = _load(tmp_path, verify=False)
    assert ds.input_shape == (AMAZON_FEATURES,) and ds.n_classes == 2
    assert len(ds.y_train) == 32 and len(ds.y_test) == 8
    # Four categorical columns -> at most four (hash collisions) active features per row.
    active = np.concatenate([ds.X_train, ds.X_test]).sum(axis=1)
    assert set(np.unique(active)) <= {1.0, 2.0, 3.0, 4.0} and active.max() == 4.0
    again = _load(tmp_path, verify=False)
    np.testing.assert_array_equal(ds.X_train, again.X_train)  # stable hashing


def test_amazon_is_unpinned_unless_the_user_pins_it(tmp_path):
    from gradcode.datasets import file_digest

    (tmp_path / "train.csv").write_text(amazon_csv(5, np.random.default_rng(0)))
    with pytest.raises(ValueError, match=r"no pinned checksum \(observed sha256:[0-9a-f]{64}\)"):
        _load(tmp_path)
    ds = _load(tmp_path, checksums={"train.csv": "sha256:" + file_digest(tmp_path / "train.csv")})
    assert len(ds.y_train) == 4
    with pytest.raises(ValueError, match=r"train\.csv.*observed sha256:[0-9a-f]{64}"):
        _load(tmp_path, checksums={"train.csv": "sha256:" + "0" * 64})


@pytest.mark.parametrize("action", ["5", "-1", "yes", ""])
def test_amazon_action_must_be_0_or_1(tmp_path, action):
    (tmp_path / "train.csv").write_text(amazon_csv(5, np.random.default_rng(0), action=action))
    with pytest.raises(ValueError, match=r"row 2: ACTION must be 0 or 1"):
        _load(tmp_path, verify=False)


@pytest.mark.parametrize(
    "text, match",
    [
        ("a,b\n1,2\n3,4\n", "ACTION"),
        ("ACTION,X\n1,2\n", "at least 2"),
        ("ACTION,X\n1\n0,3\n", "fields"),
    ],
)
def test_amazon_rejects_wrong_csv(tmp_path, text, match):
    (tmp_path / "train.csv").write_text(text)
    with pytest.raises(ValueError, match=match):
        _load(tmp_path, verify=False)


def test_amazon_binary_garbage(tmp_path):
    (tmp_path / "train.csv").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValueError):
        _load(tmp_path, verify=False)
