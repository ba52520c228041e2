"""Writers of small files in the real formats (IDX, CIFAR binary, CSV, parquet)."""

import gzip
import struct

import numpy as np

from gradcode.datasets import file_digest


def idx_bytes(arr: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def write_idx_set(root, rng, gz=True, n_train=7, n_test=3, labels=None):
    """Four MNIST-format files; ``labels`` (train) overrides the random labels."""
    images = {
        "train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "t10k": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
    }
    lab = {
        "train": rng.integers(0, 10, n_train, dtype=np.uint8) if labels is None else labels,
        "t10k": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    root.mkdir(parents=True, exist_ok=True)
    for split in ("train", "t10k"):
        for kind, arr in (
            (f"{split}-images-idx3-ubyte", images[split]),
            (f"{split}-labels-idx1-ubyte", np.asarray(lab[split], np.uint8)),
        ):
            data = idx_bytes(arr)
            if gz:
                (root / (kind + ".gz")).write_bytes(gzip.compress(data, mtime=0))
            else:
                (root / kind).write_bytes(data)
    return images, lab


def write_cifar(root, rng, n=2, label=None):
    root.mkdir(parents=True, exist_ok=True)
    written = {}
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        y = rng.integers(0, 10, n, dtype=np.uint8)
        if label is not None:
            y[0] = label
        X = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        (root / name).write_bytes(np.concatenate([y[:, None], X.reshape(n, -1)], axis=1).tobytes())
        written[name] = (X, y)
    return written


def amazon_csv(rows: int, rng, action=None) -> str:
    cols = ["ACTION", "RESOURCE", "MGR_ID", "ROLE_ROLLUP_1", "ROLE_CODE"]
    lines = [",".join(cols)]
    for r in range(rows):
        a = str(rng.integers(0, 2)) if action is None or r else str(action)
        lines.append(",".join([a] + [str(rng.integers(1, 50)) for _ in cols[1:]]))
    return "\n".join(lines) + "\n"


def mnist5k_csv_gz(path, rng, n=20, bad_label=None):
    pixels = rng.integers(0, 256, (n, 784))
    labels = np.arange(n) % 10
    if bad_label is not None:
        labels[0] = bad_label
    rows = [",".join(map(str, [*p, lab])) for p, lab in zip(pixels, labels, strict=True)]
    path.write_bytes(gzip.compress(("\n".join(rows) + "\n").encode(), mtime=0))
    return pixels, labels


def adult_columns(rng, n=40):
    """A column dict with the real Adult schema (6 numeric, 8 categorical, income)."""
    cat = {
        "workclass": ["Private", "Local-gov", "?"],
        "education": ["HS-grad", "Bachelors"],
        "marital-status": ["Never-married", "Married-civ-spouse"],
        "occupation": ["Sales", "Tech-support", "?"],
        "relationship": ["Husband", "Own-child"],
        "race": ["White", "Black"],
        "gender": ["Male", "Female"],
        "native-country": ["United-States", "Mexico"],
    }
    cols = {c: [str(v) for v in rng.choice(vals, n)] for c, vals in cat.items()}
    for c in ("age", "fnlwgt", "educational-num", "capital-gain", "capital-loss", "hours-per-week"):
        cols[c] = [int(v) for v in rng.integers(0, 100, n)]
    cols["income"] = [str(v) for v in rng.choice(["<=50K", ">50K"], n)]
    return cols


def pins(root):
    return {p.name: "sha256:" + file_digest(p) for p in root.rglob("*") if p.is_file()}
