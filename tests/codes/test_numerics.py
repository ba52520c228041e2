"""Numerical stability: cyclic MDS vs random CRC, and when cyclic MDS is real."""

import numpy as np
import pytest

from gradcode.codes import is_real_valued, make_code


def fp32_decode_error(name: str, n: int, s: int, trials: int = 200, dim: int = 512) -> float:
    """Mean relative error of the full gradient when workers encode and the
    master combines in float32 (weights computed in float64, cast to float32)."""
    code = make_code(name, n, s, rng=np.random.default_rng(0))
    rng = np.random.default_rng(1)
    errs = []
    for _ in range(trials):
        G = rng.standard_normal((n, dim)).astype(np.float32)
        truth = G.astype(np.float64).sum(axis=0)
        M = np.stack([code.encode(i, G[list(code.placement[i])]) for i in range(n)])
        assert M.dtype == np.float32
        arrived = np.sort(rng.choice(n, n - s, replace=False))
        d = code.decode(arrived)
        out = d.weights[arrived].astype(np.float32) @ M[arrived]
        errs.append(np.linalg.norm(out - truth) / np.linalg.norm(truth))
    return float(np.mean(errs))


def test_cyclic_mds_at_least_10x_more_accurate_than_crc_in_fp32():
    crc = fp32_decode_error("crc", 20, 5)
    mds = fp32_decode_error("cyclic_mds", 20, 5)
    print(f"fp32 relative error at n=20, s=5: crc {crc:.3g}, cyclic_mds {mds:.3g}")
    assert mds * 10 <= crc
    assert mds < 1e-5


@pytest.mark.parametrize("n", range(2, 25))
def test_cyclic_mds_real_exactly_when_n_plus_s_odd(n):
    for s in range(n):
        if is_real_valued(n, s):
            code = make_code("cyclic_mds", n, s)
            assert np.isrealobj(code.B)
            assert np.count_nonzero(code.B[0]) == s + 1
        else:
            assert s > 0 and (n + s) % 2 == 0
            with pytest.raises(ValueError, match="crc"):
                make_code("cyclic_mds", n, s)


def test_cyclic_mds_worst_conditioning_is_modest():
    code = make_code("cyclic_mds", 20, 5)
    rng = np.random.default_rng(0)
    worst = max(code.decode(np.sort(rng.choice(20, 15, replace=False))).cond for _ in range(500))
    assert worst < 1e4
