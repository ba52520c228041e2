"""Pinned digests: any accepted digest passes, unpinned files are refused, bad entries named."""

import hashlib

import pytest

from gradcode.datasets import PINNED, file_digest, verify_file


def test_any_accepted_digest_passes(tmp_path):
    p = tmp_path / "f.bin"
    p.write_bytes(b"payload")
    md5 = hashlib.md5(b"payload").hexdigest()
    verify_file(p, ("sha256:" + "1" * 64, "md5:" + md5))  # the second one matches
    with pytest.raises(ValueError, match="expected sha256:1+ or md5:0+, observed sha256:"):
        verify_file(p, ("sha256:" + "1" * 64, "md5:" + "0" * 32))


@pytest.mark.parametrize("entry", ["nohash", "crc99:abc", "sha256:"])
def test_bad_entry(tmp_path, entry):
    p = tmp_path / "f.bin"
    p.write_bytes(b"x")
    with pytest.raises(ValueError, match="bad checksum entry"):
        verify_file(p, (entry,))


def test_unpinned_is_an_error_naming_the_digest(tmp_path):
    p = tmp_path / "f.bin"
    p.write_bytes(b"x")
    with pytest.raises(ValueError, match=f"no pinned checksum \\(observed sha256:{file_digest(p)}"):
        verify_file(p, ())


def test_pinned_table_is_well_formed():
    for dataset, table in PINNED.items():
        for fname, accepted in table.items():
            assert accepted, (dataset, fname)
            for entry in accepted:
                algo, _, hexd = entry.partition(":")
                assert len(hexd) == {"sha256": 64, "md5": 32}[algo], (dataset, fname)
                int(hexd, 16)
    # Every Fashion-MNIST file is pinned by SHA-256 (not only by MD5).
    for fname, accepted in PINNED["fashion_mnist"].items():
        assert any(a.startswith("sha256:") for a in accepted), fname
    assert PINNED["cifar10"] == {} and PINNED["amazon"] == {}  # honest: nothing published
