"""MNIST-1D, generated procedurally: no file, no download.

MNIST-1D (Greydanus & Kobak, "Scaling down deep learning with MNIST-1D",
ICML 2024) turns ten hand-made 1-D digit templates into 5,000 length-40
signals by random padding, shear, translation, correlated and i.i.d. noise.
The ``mnist1d`` package (``pip install 'gradcode[data]'``) generates it; its
default settings with seed 42 *are* the benchmark: 4,000 train and 1,000 test
signals, 10 classes.  We call its ``make_dataset`` (never its ``get_dataset``,
which downloads a pickle) and give each signal the shape ``(1, 40)`` (one
channel, length 40) so the CNN and ResNet use 1-D convolutions.

``mnist1d`` draws from NumPy's and Python's *global* RNGs; both states are
saved and restored around the call, so loading leaves the process as it was.
With ``verify=True`` the generated arrays are compared with a pinned
fingerprint (SHA-256 of the labels; sum of ``|x|`` and the first values, to
1e-6 relative), which catches a different ``mnist1d``/SciPy producing other data.
"""

from __future__ import annotations

import hashlib
import random

import numpy as np

from .base import Dataset

#: Fingerprint of the benchmark as mnist1d 0.0.2.post1 generates it (train then test).
MNIST1D_FINGERPRINT = {
    "labels_sha256": "6feec4a017698c7fe237c8854cbd2e338c6dd5c16240f6fa79daefaaa129e169",
    "abs_sum": 148316.17264806535,
    "first": (-0.33200566736939013, -0.4719103656557236, -0.778697076293495, -1.0097408265367045),
}


def _generate(seed: int) -> dict:
    try:
        import mnist1d.data as m1d
    except ImportError:
        raise ValueError(
            "dataset 'mnist1d' needs the mnist1d package: pip install 'gradcode[data]'"
        ) from None
    args = m1d.get_dataset_args()
    args.seed = seed
    np_state, py_state = np.random.get_state(), random.getstate()  # noqa: NPY002
    try:
        return m1d.make_dataset(args)
    finally:
        np.random.set_state(np_state)  # noqa: NPY002
        random.setstate(py_state)


def check_fingerprint(x: np.ndarray, y: np.ndarray) -> None:
    """Raise ``ValueError`` unless ``(x, y)`` match :data:`MNIST1D_FINGERPRINT`."""
    ref = MNIST1D_FINGERPRINT
    ok = hashlib.sha256(np.asarray(y, np.int64).tobytes()).hexdigest() == ref["labels_sha256"]
    ok = ok and np.isclose(np.abs(x).sum(), ref["abs_sum"], rtol=1e-6, atol=0)
    ok = ok and np.allclose(x[0, : len(ref["first"])], ref["first"], rtol=1e-6, atol=1e-9)
    if not ok:
        raise ValueError(
            "dataset 'mnist1d': the generated data differ from the pinned benchmark fingerprint "
            "(another mnist1d or SciPy version?); --no-verify (verify=False) uses them anyway"
        )


def load_mnist1d(verify: bool = True) -> Dataset:
    """The MNIST-1D benchmark (seed 42, 4,000 train / 1,000 test)."""
    d = _generate(42)
    x = np.concatenate([d["x"], d["x_test"]])
    y = np.concatenate([d["y"], d["y_test"]]).astype(np.int64)
    if verify:
        check_fingerprint(x, y)
    n_train = len(d["y"])
    X = x.astype(np.float32).reshape(-1, 1, x.shape[1])
    return Dataset(
        "mnist1d", X[:n_train], y[:n_train], X[n_train:], y[n_train:], 10, (1, x.shape[1])
    )
